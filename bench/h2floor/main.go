// Command h2floor measures the floor that Go's own HTTP/2 server puts under any Go front: an
// http.Server with TLS (HTTP/2 by ALPN, net/http's bundled server, default settings) that either answers
// a fixed 64-byte body itself (-mode static: no proxying at all) or proxies to -backend through a stock
// httputil.ReverseProxy with a pool of 256 idle connections (-mode proxy). bench/results/2026-12-06-h2.md
// compares its CPU per request with nginx's and the gateway's under the same h2load run.
//
//	h2floor -mode static -addr 127.0.0.1:28004 -cert cert.pem -key key.pem [-pprof 127.0.0.1:28014]
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:28004", "HTTPS listen address")
	mode := flag.String("mode", "static", "static (answer 64 bytes) or proxy (stock ReverseProxy to -backend)")
	backend := flag.String("backend", "http://127.0.0.1:28001", "the backend of -mode proxy")
	cert := flag.String("cert", "cert.pem", "certificate (PEM)")
	key := flag.String("key", "key.pem", "private key (PEM)")
	pprofAddr := flag.String("pprof", "", "serve /debug/pprof/ on this plain-HTTP address (empty: off)")
	flag.Parse()
	var h http.Handler
	switch *mode {
	case "static":
		body := bytes.Repeat([]byte{'x'}, 64)
		size := []string{strconv.Itoa(len(body))}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = size
			w.Header()["Content-Type"] = []string{"text/plain"}
			w.Write(body)
		})
	case "proxy":
		u, err := url.Parse(*backend)
		if err != nil {
			log.Fatalf("-backend %q: %v", *backend, err)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 2 * time.Minute}
		h = rp
	default:
		log.Fatalf("-mode %q: want static or proxy", *mode)
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { log.Print(http.ListenAndServe(*pprofAddr, mux)) }()
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
