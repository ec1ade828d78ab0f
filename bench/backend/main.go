// Command backend is the upstream the bench scripts put behind each front (nginx, HAProxy, Caddy, the
// gateway): a minimal HTTP/1.1 server with fixed answers, so that what is measured is the front, not the app.
//
// Endpoints (GET unless said otherwise):
//
//	/small          a body of -size bytes (64 by default); also every path not listed here
//	/64k            65536 bytes
//	/echo-size      any method: reads the whole request body and answers its length in decimal
//	/stream?bytes=N N bytes (1 GiB by default) with a Content-Length, written 64 KiB at a time
//	/missing        404
//	/_requests      the number of other requests served so far, in decimal (the bench checks with it that a
//	                cascade front really asked the primary)
//
// With -notfound every path but /_requests answers 404 (a cascade primary that claims nothing). Bodies are preallocated
// and answers carry a Content-Length, so the backend does no work per request beyond net/http's own.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18001", "listen address")
	size := flag.Int("size", 64, "body size of /small (and of every unlisted path) in bytes")
	notFound := flag.Bool("notfound", false, "answer 404 to every path")
	flag.Parse()
	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler(*size, *notFound),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	log.Fatal(srv.ListenAndServe())
}

// handler builds the backend's handler; see the package comment for the endpoints.
func handler(size int, notFound bool) http.Handler {
	var served atomic.Int64
	h := endpoints(size, notFound)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_requests" {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(strconv.AppendInt(nil, served.Load(), 10))
			return
		}
		served.Add(1)
		h.ServeHTTP(w, r)
	})
}

// endpoints serves everything but /_requests.
func endpoints(size int, notFound bool) http.Handler {
	small := fixed(bytes.Repeat([]byte{'x'}, size))
	big := fixed(bytes.Repeat([]byte{'y'}, 64<<10))
	missing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not found\n")
	})
	if notFound {
		return missing
	}
	chunk := bytes.Repeat([]byte{'z'}, 64<<10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/64k":
			big.ServeHTTP(w, r)
		case "/missing":
			missing.ServeHTTP(w, r)
		case "/echo-size":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Write(strconv.AppendInt(nil, n, 10))
		case "/stream":
			n := int64(1 << 30)
			if s := r.URL.Query().Get("bytes"); s != "" {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil || v < 0 {
					http.Error(w, "bytes: want a non-negative integer", http.StatusBadRequest)
					return
				}
				n = v
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			for n > 0 {
				part := chunk[:min(n, int64(len(chunk)))]
				if _, err := w.Write(part); err != nil {
					return
				}
				n -= int64(len(part))
			}
		default:
			small.ServeHTTP(w, r)
		}
	})
}

// fixed answers body with a Content-Length to every request.
func fixed(body []byte) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
}
