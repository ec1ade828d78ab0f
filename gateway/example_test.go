package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
)

// get serves one request on h and returns the status and body.
func get(h http.Handler, path string) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return fmt.Sprintf("%d %s", rec.Code, body)
}

// A program embeds the gateway: two Go handlers registered as in-process apps (inproc://NAME) are
// composed by the same configuration the gateway command reads from GATEWAY_* variables. The new app
// owns /v2/ (with the prefix stripped); the legacy app is the primary and answers everything else.
func ExampleBuild() {
	legacy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "legacy %s", r.URL.Path)
	})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "new %s (mounted at %s)", r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	})
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "inproc://legacy",
		"GATEWAY_ROUTES":  "/v2/=inproc://next?strip_prefix=true",
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := builtin.Registry(nil, map[string]http.Handler{"legacy": legacy, "next": next})
	g, err := gateway.Build(cfg, gateway.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()

	fmt.Println(get(g.Handler, "/v2/orders/1"))
	fmt.Println(get(g.Handler, "/orders/1"))
	// Output:
	// 200 new /orders/1 (mounted at /v2)
	// 200 legacy /orders/1
}

// The live gateway: Live serves each request on the configuration current when it arrived, a Reloader
// swaps in a new one without losing a request, and NewFront puts the production listener stack (the
// connection limits, idle parking) in front. At shutdown the server drains, then Live's Drain waits for
// upgraded connections, which http.Server.Shutdown does not track.
func Example_live() {
	logger := slog.New(slog.DiscardHandler)
	apps := map[string]http.Handler{}
	for _, name := range []string{"blue", "green"} {
		apps[name] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })
	}
	primary := "inproc://blue" // what a configuration file would say; the Reloader's Load reads it again
	load := func() (config.Config, error) {
		return config.Load(map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_PRIMARY": primary}, nil)
	}
	build := func(cfg config.Config, prev *gateway.Gateway) (*gateway.Gateway, error) {
		return gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, apps), Logger: logger, Previous: prev})
	}

	cfg, err := load()
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := build(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	live := gateway.NewLive(logger)
	live.Swap(g)
	defer live.Close()
	reloader := gateway.NewReloader(cfg, live, load, build)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	front := gateway.NewFront(cfg, live, ln, logger, gateway.FrontOptions{})
	go front.Serve()
	fetch := func() string {
		resp, err := http.Get("http://" + front.Addr().String() + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}

	fmt.Println(fetch())
	primary = "inproc://green"
	if err := reloader.Reload("example", false); err != nil {
		fmt.Println(err)
	}
	fmt.Println(fetch())
	primary = "inproc://nowhere" // does not build: the running configuration stays
	fmt.Println(reloader.Reload("example", false) != nil, fetch())

	if err := front.Server.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	n, drained := live.Drain()
	<-drained
	fmt.Println("upgraded connections left:", n)
	// Output:
	// blue
	// green
	// true green
	// upgraded connections left: 0
}
