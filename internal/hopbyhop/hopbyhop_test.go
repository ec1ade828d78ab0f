package hopbyhop

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCopyResponse(t *testing.T) {
	src := http.Header{
		"Connection":          {"X-Secret, keep-alive", "x-other"},
		"X-Secret":            {"internal"},
		"X-Other":             {"o"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Connection":    {"x"},
		"Proxy-Authenticate":  {"Basic"},
		"Proxy-Authorization": {"Basic eDp5"},
		"Te":                  {"trailers"},
		"Trailer":             {"X-Sum"},
		"Transfer-Encoding":   {"chunked"},
		"Upgrade":             {"h2c"},
		"Set-Cookie":          {"a=1", "b=2"},
		"Content-Type":        {"text/plain"},
	}
	dst := http.Header{"Set-Cookie": {"gw=1"}}
	CopyResponse(dst, src)
	want := http.Header{"Set-Cookie": {"gw=1", "a=1", "b=2"}, "Content-Type": {"text/plain"}}
	if d := cmp.Diff(want, dst); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	dst["Content-Type"] = append(dst["Content-Type"], "x")
	if len(src["Content-Type"]) != 1 {
		t.Fatal("an append to the copy changed the source")
	}
}
