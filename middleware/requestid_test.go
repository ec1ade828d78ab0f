package middleware

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestRequestID(t *testing.T) {
	newID := regexp.MustCompile(`^[0-9a-f]{24}$`)
	var seen string // the id the app saw last
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get(RequestIDHeader)
		r.Header[RequestIDHeader][0] = "changed-by-the-app" // in place: must not change the response's value
	})
	h := RequestID()(app)
	serve := func(clientID []string) (sent, echoed string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if clientID != nil {
			r.Header[RequestIDHeader] = append([]string(nil), clientID...)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return seen, w.Header().Get(RequestIDHeader)
	}
	for _, tt := range []struct {
		name   string
		client []string
		keep   bool
	}{
		{"a request without an id gets a new one", nil, false},
		{"a valid client id is kept", []string{"retry-42.A_b"}, true},
		{"an empty id is replaced", []string{""}, false},
		{"an id with a space is replaced (no forged log fields)", []string{"a b"}, false},
		{"an id with a newline is replaced", []string{"a\nrequest_id=x"}, false},
		{"an id longer than 64 characters is replaced", []string{"a123456789a123456789a123456789a123456789a123456789a123456789a1234"}, false},
		{"an id of 64 characters is kept", []string{"a123456789a123456789a123456789a123456789a123456789a123456789a123"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sent, echoed := serve(tt.client)
			if sent != echoed {
				t.Fatalf("the app got %q, the client %q: they differ", sent, echoed)
			}
			if tt.keep {
				if sent != tt.client[0] {
					t.Fatalf("id %q, want the client's %q", sent, tt.client[0])
				}
				return
			}
			if !newID.MatchString(sent) {
				t.Fatalf("new id %q is not 24 lowercase hex digits", sent)
			}
		})
	}
	t.Run("new ids differ from request to request", func(t *testing.T) {
		ids := map[string]bool{}
		for range 1000 {
			id, _ := serve(nil)
			if ids[id] {
				t.Fatalf("id %q given twice in 1000 requests", id)
			}
			ids[id] = true
		}
	})
}
