// Command backend runs the load tests' apps (package loadapp) on the listeners it inherits as file
// descriptors from 3 on (one per loadapp.Roles), until SIGTERM or SIGINT. The load tests build and
// start it; it is not meant to be run by hand.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard/switchyard/test/load/internal/loadapp"
)

func main() {
	var listeners []net.Listener
	for i, role := range loadapp.Roles {
		ln, err := net.FileListener(os.NewFile(uintptr(3+i), role))
		if err != nil {
			fmt.Fprintf(os.Stderr, "backend: %s listener (fd %d): %v\n", role, 3+i, err)
			os.Exit(1)
		}
		listeners = append(listeners, ln)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- loadapp.Serve(listeners) }()
	select {
	case <-sigs:
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "backend: %v\n", err)
		os.Exit(1)
	}
}
