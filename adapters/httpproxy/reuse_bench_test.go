package httpproxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkTransportPaths measures the paths whose connection reuse differs (see the package doc): a small
// GET on the h1 fast path, the same with fast_path=false and to an https:// app (net/http's Transport,
// guarded), and a 64 KiB POST, which h1 hands to its fallback Transport (no keep-alive).
func BenchmarkTransportPaths(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})
	plain := httptest.NewServer(handler)
	b.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(handler)
	b.Cleanup(secure.Close)
	upload := bytes.Repeat([]byte("x"), 64<<10)
	for _, c := range []struct {
		name, url string
		body      []byte
	}{
		{"small GET, h1 fast path", plain.URL, nil},
		{"small GET, fast_path=false", plain.URL + "?fast_path=false", nil},
		{"small GET, https app", secure.URL + "?tls_insecure_skip_verify=true", nil},
		{"64 KiB POST, h1 fallback", plain.URL, upload},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, _, _ := build(b, c.url)
			b.ReportAllocs()
			for b.Loop() {
				var body io.Reader
				if c.body != nil {
					body = bytes.NewReader(c.body)
				}
				r := httptest.NewRequestWithContext(context.Background(), "POST", "/x", body)
				if c.body == nil {
					r.Method = "GET"
				}
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
