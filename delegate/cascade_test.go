package delegate

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// bodyHash answers with its name and the sha256 of the body it received.
func bodyHash(name string, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "from", Value: name})
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %x %d", name, sha256.Sum256(b), len(b))
	})
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestCascadeResendsTheBodyByteForByte(t *testing.T) {
	body := make([]byte, 1<<20)
	rand.Read(body)
	want := fmt.Sprintf("delegate %x %d", sha256.Sum256(body), len(body))
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			c := &Cascade{Apps: []App{{Name: "primary", Handler: bodyHash("primary", 404)}, {Name: "delegate", Handler: bodyHash("delegate", 200)}}}
			srv := serve(t, c)
			var rd io.Reader = bytes.NewReader(body)
			if chunked {
				rd = io.MultiReader(rd) // hides the length: the client sends chunked
			}
			resp, err := http.Post(srv.URL+"/form", "application/octet-stream", rd)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, got, want)
			}
			if cs := resp.Cookies(); len(cs) != 1 || cs[0].Value != "delegate" {
				t.Fatalf("cookies %v: the passed answer's headers leaked", cs)
			}
		})
	}
}

func TestCascade(t *testing.T) {
	tests := []struct {
		name   string
		apps   []App
		pass   func(int) bool
		status int
		prefix string
	}{
		{"the primary's non-pass answer is final", []App{{Name: "a", Handler: bodyHash("a", 200)}, {Name: "b", Handler: bodyHash("b", 200)}}, nil, 200, "a "},
		{"an error status that is not a pass status is final", []App{{Name: "a", Handler: bodyHash("a", 500)}, {Name: "b", Handler: bodyHash("b", 200)}}, nil, 500, "a "},
		{"every pass continues to the next app", []App{{Name: "a", Handler: bodyHash("a", 404)}, {Name: "b", Handler: bodyHash("b", 404)}, {Name: "c", Handler: bodyHash("c", 201)}}, nil, 201, "c "},
		{"the last app's pass status is still final", []App{{Name: "a", Handler: bodyHash("a", 404)}, {Name: "b", Handler: bodyHash("b", 404)}}, nil, 404, "b "},
		{"configured pass statuses are honoured", []App{{Name: "a", Handler: bodyHash("a", 410)}, {Name: "b", Handler: bodyHash("b", 200)}}, StatusSet(404, 410), 200, "b "},
		{"404 does not pass when not configured", []App{{Name: "a", Handler: bodyHash("a", 404)}, {Name: "b", Handler: bodyHash("b", 200)}}, StatusSet(410), 404, "a "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, &Cascade{Apps: tt.apps, Pass: tt.pass})
			resp, err := http.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.HasPrefix(string(b), tt.prefix) {
				t.Fatalf("got %d %q, want %d %q...", resp.StatusCode, b, tt.status, tt.prefix)
			}
		})
	}
}

func TestCascadeBodyOverTheLimitIsFinalAtTheFirstApp(t *testing.T) {
	body := strings.Repeat("x", 100)
	for _, chunked := range []bool{false, true} {
		srv := serve(t, &Cascade{BodyLimit: 10, Apps: []App{{Name: "a", Handler: bodyHash("a", 404)}, {Name: "b", Handler: bodyHash("b", 200)}}})
		var rd io.Reader = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd)
		}
		resp, err := http.Post(srv.URL, "text/plain", rd)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("a %x 100", sha256.Sum256([]byte(body)))
		if resp.StatusCode != 404 || string(b) != want {
			t.Fatalf("chunked=%v: got %d %q, want the first app's 404 with the whole body %q", chunked, resp.StatusCode, b, want)
		}
	}
}

func TestCascadeStreamsOnceTheAnswerIsFinal(t *testing.T) {
	release := make(chan struct{})
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	})
	srv := serve(t, &Cascade{Apps: []App{{Name: "a", Handler: stream}, {Name: "b", Handler: bodyHash("b", 200)}}})
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(release) // the second event is only sent after the first arrived
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

func TestFallThroughDelegatesUnmatchedRoutesWithoutStatusSniffing(t *testing.T) {
	newApp := chi.NewRouter()
	newApp.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404) // a route of the new app answering 404 stays the new app's answer
		fmt.Fprint(w, "new user "+chi.URLParam(r, "id"))
	})
	old := chi.NewRouter()
	old.HandleFunc("/*", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "old "+r.Method+" "+r.URL.Path) })
	FallThrough(newApp, old)
	srv := serve(t, newApp)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/users/7", "new user 7"},
		{"GET", "/orders/1", "old GET /orders/1"},
		{"POST", "/users/7", "old POST /users/7"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.method, tc.path, b, tc.want)
		}
	}
}
