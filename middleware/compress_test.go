package middleware

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCompress(t *testing.T) {
	big := strings.Repeat("switchyard compresses this line\n", 200)
	mw := mustMW(t)(Compress(CompressOptions{}))
	tests := []struct {
		name     string
		accept   string
		ctype    string
		body     string
		encoding string
	}{
		{"gzip when only gzip is accepted", "gzip", "text/html", big, "gzip"},
		{"zstd when preferred", "zstd, gzip;q=0.5", "text/html", big, "zstd"},
		{"nothing when nothing is accepted", "", "text/html", big, ""},
		{"nothing below the minimum size", "gzip", "text/html", "short", ""},
		{"never server-sent events", "gzip", "text/event-stream", big, ""},
		{"never already-compressed types", "gzip", "image/png", big, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, mw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				io.WriteString(w, tt.body)
			}))
			hdr := map[string]string{}
			if tt.accept != "" {
				hdr["Accept-Encoding"] = tt.accept
			}
			resp, body := do(t, "GET", url, hdr, nil)
			if got := resp.Header.Get("Content-Encoding"); got != tt.encoding {
				t.Fatalf("Content-Encoding %q, want %q", got, tt.encoding)
			}
			var plain []byte
			switch tt.encoding {
			case "gzip":
				zr, err := gzip.NewReader(strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				plain, _ = io.ReadAll(zr)
			case "zstd":
				zr, err := zstd.NewReader(strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				plain, _ = io.ReadAll(zr)
				zr.Close()
			default:
				plain = []byte(body)
			}
			if string(plain) != tt.body {
				t.Fatalf("body of %d bytes does not match", len(plain))
			}
		})
	}
}

// TestCompressKeepsFlushing streams a compressible response event by event: each flushed piece must reach
// the client, decompressed, before the handler writes the next.
func TestCompressKeepsFlushing(t *testing.T) {
	next := make(chan struct{})
	url := serve(t, mustMW(t)(Compress(CompressOptions{})), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := 0; i < 3; i++ {
			io.WriteString(w, "line\n")
			http.NewResponseController(w).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("not compressed: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != "line\n" {
			t.Fatalf("piece %d: %q %v", i, line, err)
		}
		next <- struct{}{}
	}
}
