package delegate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
)

// sideServer answers its name, so a test sees which side served it.
func sideServer(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return s
}

// proxyTo is a minimal forwarding handler, so both sides are reached through real sockets.
func proxyTo(t *testing.T, url string) http.Handler {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get(url + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

func TestCanaryAtTenPercentSendsTenPercentOfClientsToTheNewAppAndKeepsThemThere(t *testing.T) {
	split := &Split{New: proxyTo(t, sideServer(t, "new").URL), Old: proxyTo(t, sideServer(t, "old").URL), Percent: 10, Salt: "/shop/"}
	front := httptest.NewServer(split)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	const n = 10000
	toNew := 0
	cookies := map[string]string{} // cookie value -> side, for a sample of clients
	for i := 0; i < n; i++ {
		body, resp := get(t, client, front.URL+"/shop/cart", nil) // no cookie: a new client each time
		var id string
		for _, c := range resp.Cookies() {
			if c.Name == DefaultCanaryCookie {
				id = c.Value
			}
		}
		if id == "" {
			t.Fatalf("request %d: no %s cookie set", i, DefaultCanaryCookie)
		}
		if body == "new" {
			toNew++
		}
		if i < 300 {
			cookies[id] = body
		}
	}
	if toNew < 800 || toNew > 1200 {
		t.Fatalf("new app served %d of %d clients; want 10%% +/- 2%% (800..1200)", toNew, n)
	}
	t.Logf("new app served %d of %d clients (%.2f%%)", toNew, n, float64(toNew)*100/n)

	for id, side := range cookies {
		for k := 0; k < 3; k++ {
			body, resp := get(t, client, front.URL+"/shop/item/7", map[string]string{"Cookie": DefaultCanaryCookie + "=" + id})
			if body != side {
				t.Fatalf("client %s moved from %s to %s", id, side, body)
			}
			if len(resp.Cookies()) != 0 {
				t.Fatalf("client with a cookie got a new one: %v", resp.Cookies())
			}
		}
	}
}

func TestCanaryWithACookieJarClientStaysOnOneSide(t *testing.T) {
	split := &Split{New: proxyTo(t, sideServer(t, "new").URL), Old: proxyTo(t, sideServer(t, "old").URL), Percent: 50}
	front := httptest.NewServer(split)
	defer front.Close()
	for c := 0; c < 20; c++ {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		first, _ := get(t, client, front.URL+"/", nil)
		for k := 0; k < 5; k++ {
			if got, _ := get(t, client, front.URL+"/x", nil); got != first {
				t.Fatalf("client %d: side changed from %s to %s", c, first, got)
			}
		}
		client.CloseIdleConnections()
	}
}

func TestSplitAssignment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		split   Split
		header  map[string]string
		want    Side
		wantSet bool
	}{
		{"a request without the sticky header goes to the old app and gets no cookie", Split{Percent: 100, Header: "X-User"}, nil, SideOld, false},
		{"a request with the sticky header at 100 percent goes to the new app", Split{Percent: 100, Header: "X-User"}, map[string]string{"X-User": "ann"}, SideNew, false},
		{"at 0 percent everyone stays on the old app", Split{Percent: 0}, map[string]string{"Cookie": DefaultCanaryCookie + "=abc"}, SideOld, false},
		{"a client without a cookie is given one", Split{Percent: 0}, nil, SideOld, true},
		{"a custom cookie name is read", Split{Percent: 100, Cookie: "cohort"}, map[string]string{"Cookie": "cohort=x"}, SideNew, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			side, id := tc.split.Assign(r)
			if side != tc.want || (id != "") != tc.wantSet {
				t.Fatalf("Assign = %v, %q; want %v, set=%v", side, id, tc.want, tc.wantSet)
			}
		})
	}
}

func TestRaisingThePercentOnlyMovesClientsFromOldToNew(t *testing.T) {
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("client-%d", i)
		low, high := (&Split{Percent: 10}).SideOf(id), (&Split{Percent: 30}).SideOf(id)
		if low == SideNew && high == SideOld {
			t.Fatalf("%s is on the new side at 10%% but not at 30%%", id)
		}
	}
}

func TestParseSticky(t *testing.T) {
	for _, tc := range []struct {
		in             string
		cookie, header string
		ok             bool
	}{
		{"", DefaultCanaryCookie, "", true},
		{"cookie:cohort", "cohort", "", true},
		{"header:x-user-id", "", "X-User-Id", true},
		{"header:", "", "", false},
		{"query:x", "", "", false},
		{"cookie:a b", "", "", false},
	} {
		c, h, ok := ParseSticky(tc.in)
		if c != tc.cookie || h != tc.header || ok != tc.ok {
			t.Errorf("ParseSticky(%q) = %q, %q, %v; want %q, %q, %v", tc.in, c, h, ok, tc.cookie, tc.header, tc.ok)
		}
	}
}

func FuzzParseSticky(f *testing.F) {
	for _, s := range []string{"", "cookie:a", "header:X-User", "header:", "x:y:z", "cookie:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, h, ok := ParseSticky(s)
		if ok && (c == "") == (h == "") {
			t.Fatalf("ParseSticky(%q) = %q, %q: exactly one of cookie and header must be set", s, c, h)
		}
		if ok && !validToken(c+h) {
			t.Fatalf("ParseSticky(%q) accepted an invalid name %q", s, c+h)
		}
	})
}

func BenchmarkSplitAssign(b *testing.B) {
	s := &Split{Percent: 10, Salt: "/shop/"}
	r := httptest.NewRequest(http.MethodGet, "/shop/", nil)
	r.Header.Set("Cookie", DefaultCanaryCookie+"=0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		s.Assign(r)
	}
}
