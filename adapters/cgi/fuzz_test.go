package cgi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProgramOutput runs a real program that prints the fuzzed bytes and checks what the client gets: the
// stdlib parses CGI output itself, so this fuzzes the stdlib parser together with the adapter's
// classification of its failures. Whatever the output, the handler must not panic or hang, and a 500 can
// only come from a program that asked for it (the stdlib's own 500s must have become 502).
func FuzzProgramOutput(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\n\nhello",
		"Status: 500 x\nContent-Type: text/plain\n\n",
		"Status: 5\n\n",
		"garbage",
		"Location: /x\n\n",
		"X: y\r\n\r\n",
		":\n\n",
		"Status: 200\nStatus: 404\nContent-Type: a\n\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	out := filepath.Join(dir, "out")
	prog := filepath.Join(dir, "cat.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexec cat "+out+"\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	h, _ := build(f, "cgi://"+prog+"?timeout=5s", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode == http.StatusInternalServerError && !bytes.Contains(data, []byte("Status:")) {
			t.Fatalf("a 500 the program did not ask for, body %q, output %q", body, data)
		}
	})
}
