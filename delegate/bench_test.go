package delegate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// nopWriter keeps nothing, so a benchmark counts the cascade's allocations only. Its header map is
// cleared, not replaced, between requests.
type nopWriter struct {
	h    http.Header
	code int
}

func newNopWriter() *nopWriter                   { return &nopWriter{h: http.Header{}} }
func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
func (w *nopWriter) reset()                      { clear(w.h); w.code = 0 }

var (
	// notFoundApp is a primary that does not have the page: a 404 with a small body.
	notFoundApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = textPlain
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "not found")
	})
	// okApp serves every page.
	okApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = textPlain
		_, _ = io.WriteString(w, "hello")
	})
	textPlain = []string{"text/plain"}
)

// cascadeCases are the cascade benchmarks and allocation tests: a GET without a body (nothing held)
// answered by the delegate after the primary's 404, or by the primary itself.
var cascadeCases = []struct {
	name   string
	apps   []App
	status int
}{
	{"primary-404-delegate-serves", []App{{Name: "new", Handler: notFoundApp}, {Name: "old", Handler: okApp}}, 200},
	{"primary-serves", []App{{Name: "new", Handler: okApp}, {Name: "old", Handler: notFoundApp}}, 200},
}

func cascadeRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/users/7", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "session=0123456789abcdef")
	r.Header.Set("User-Agent", "bench")
	return r
}

func BenchmarkCascade(b *testing.B) {
	for _, tt := range cascadeCases {
		b.Run(tt.name, func(b *testing.B) {
			c := &Cascade{Apps: tt.apps}
			r, w := cascadeRequest(), newNopWriter()
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				c.ServeHTTP(w, r)
				if w.code != 0 && w.code != tt.status {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
