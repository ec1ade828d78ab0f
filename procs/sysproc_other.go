//go:build unix && !linux

package procs

import "syscall"

// sysProcAttr puts each instance in a process group of its own, so a stop reaches its workers too. These
// systems have no parent death signal: an instance outlives a gateway killed with SIGKILL (a gateway
// stopped with SIGTERM or SIGINT stops its apps first).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// ParentDeathSignal reports whether instances are killed by the kernel when the gateway dies.
const ParentDeathSignal = false
