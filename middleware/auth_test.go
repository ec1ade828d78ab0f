package middleware

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestBasicAuth(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	mw := mustMW(t)(BasicAuth(BasicAuthOptions{Users: map[string]string{"alice": string(hash)}, Realm: "ops", UserHeader: "X-Auth-User"}))
	url := serve(t, mw, echoApp("Authorization", "X-Auth-User"))
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		body   string
	}{
		{"no credentials get a challenge", nil, 401, ""},
		{"a wrong password is refused", map[string]string{"Authorization": basic("alice", "nope")}, 401, ""},
		{"an unknown user is refused", map[string]string{"Authorization": basic("bob", "s3cret")}, 401, ""},
		{"the right password passes without Authorization, with the user", map[string]string{"Authorization": basic("alice", "s3cret")}, 200, "/|Authorization=|X-Auth-User=alice"},
		{"a forged user header is replaced", map[string]string{"Authorization": basic("alice", "s3cret"), "X-Auth-User": "root"}, 200, "/|Authorization=|X-Auth-User=alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", url, tt.hdr, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="ops", charset="UTF-8"` {
				t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.status == 200 && body != tt.body {
				t.Fatalf("app saw %q", body)
			}
		})
	}
	if _, err := BasicAuth(BasicAuthOptions{Users: map[string]string{"a": "plain"}}); err == nil {
		t.Error("a plain-text password was accepted")
	}
}

func TestForwardAuth(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.Header.Get("X-Forwarded-Method") != "POST" || r.Header.Get("X-Forwarded-Uri") != "/app/x?y=1" || r.Header.Get("X-Forwarded-Host") == "" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			http.Error(w, "bad auth request "+r.Method+" "+r.Header.Get("X-Forwarded-Uri"), 500)
			return
		}
		switch r.Header.Get("Cookie") {
		case "session=good":
			w.Header().Set("X-Auth-User", "alice")
			w.Header().Set("X-Other", "not copied")
			w.WriteHeader(204)
		case "session=slow":
			<-r.Context().Done()
		default:
			w.Header().Set("Location", "https://login.example/?rd=x")
			w.Header().Set("Set-Cookie", "csrf=1")
			w.WriteHeader(302)
			io.WriteString(w, "please log in")
		}
	}))
	defer auth.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	newURL := func(target string) string {
		return serve(t, mustMW(t)(ForwardAuth(ForwardAuthOptions{URL: target, ResponseHeaders: []string{"X-Auth-User"}, Timeout: 2 * time.Second, Logger: logger})), // generous: a loaded machine must not time out a quick auth app
			echoApp("X-Auth-User", "X-Other"))
	}
	good := newURL(auth.URL)
	tests := []struct {
		name   string
		url    string
		cookie string
		status int
		body   string
		loc    string
	}{
		{"a 2xx lets the request through with the copied headers", good, "session=good", 200, "/app/x?y=1|X-Auth-User=alice|X-Other=", ""},
		{"otherwise the auth app's answer goes to the client", good, "session=none", 302, "please log in", "https://login.example/?rd=x"},
		{"an auth app that does not answer in time is 504", good, "session=slow", 504, "", ""},
		{"an auth app that is down is 502", newURL(deadURL), "session=good", 502, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "POST", tt.url+"/app/x?y=1", map[string]string{"Cookie": tt.cookie, "X-Auth-User": "forged"}, strings.NewReader("body"))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if resp.Header.Get("Location") != tt.loc {
				t.Fatalf("Location %q", resp.Header.Get("Location"))
			}
		})
	}
}

// TestForwardAuthNeverTakesAnUnsolicitedAnswer: an auth app that writes a second, unsolicited 2xx right
// behind each answer (with another identity) must never have it read as the answer to the next check on
// a reused connection (response-queue poisoning, SECURITY.md): every request passes as its own user.
func TestForwardAuthNeverTakesAnUnsolicitedAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					user := strings.TrimPrefix(req.Header.Get("Cookie"), "user=")
					fmt.Fprintf(c, "HTTP/1.1 204 No Content\r\nX-Auth-User: %s\r\n\r\nHTTP/1.1 204 No Content\r\nX-Auth-User: admin\r\n\r\n", user)
				}
			}()
		}
	}()
	mw, err := ForwardAuth(ForwardAuthOptions{URL: "http://" + ln.Addr().String() + "/auth", ResponseHeaders: []string{"X-Auth-User"},
		Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Auth-User")) }))
	for i := range 30 {
		user := fmt.Sprintf("u%d", i)
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set("Cookie", "user="+user)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.String() != user {
			t.Fatalf("request %d as %s passed with status %d as %q", i, user, w.Code, w.Body.String())
		}
	}
}
