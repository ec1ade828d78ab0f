package transportguard

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkTransportGuard is the guard's cost per request on a reused connection: the same small GET
// through a plain Transport and a guarded one, over http and https.
func BenchmarkTransportGuard(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	for _, overTLS := range []bool{false, true} {
		srv, scheme := httptest.NewUnstartedServer(handler), "http"
		if overTLS {
			scheme = "https"
			srv.StartTLS()
		} else {
			srv.Start()
		}
		b.Cleanup(srv.Close)
		for _, guard := range []bool{false, true} {
			name := scheme
			if guard {
				name += ", guarded"
			} else {
				name += ", plain Transport"
			}
			b.Run(name, func(b *testing.B) {
				tr := &http.Transport{
					DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
					MaxIdleConnsPerHost: 4,
					TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
				}
				var rt http.RoundTripper = tr
				if guard {
					rt = Wrap(tr)
				}
				b.Cleanup(tr.CloseIdleConnections)
				b.ReportAllocs()
				for b.Loop() {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
}
