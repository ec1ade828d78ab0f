// Package demo owns the built-in demonstration served when the gateway is started with no application
// configured: two small in-process applications, a "new" one written with chi as the primary and a "legacy"
// one written with the standard library as its delegate, composed by the same cascade a real deployment
// uses.
package demo

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Names of the demo apps as inproc:// apps.
const (
	NewApp    = "demo-new"
	LegacyApp = "demo-legacy"
)

// Apps returns the two demo applications by name.
func Apps() map[string]http.Handler {
	return map[string]http.Handler{NewApp: newApp(), LegacyApp: legacyApp()}
}

// Primary and Delegate are the APP URLs of the demo.
const (
	Primary  = "inproc://" + NewApp
	Delegate = "inproc://" + LegacyApp
)

func newApp() http.Handler {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Switchyard demo</title>
<h1>Switchyard demo</h1>
<p>This page comes from the <b>new</b> application (chi, the primary). Whatever it does not know falls through to the <b>legacy</b> application (net/http, the delegate).</p>
<ul>
<li><a href="/api/hello?name=you">/api/hello</a> is served by the new app</li>
<li><a href="/orders/42">/orders/42</a> is unknown to the new app: the legacy app answers</li>
<li><a href="/nowhere">/nowhere</a> is unknown to both: the legacy app's 404 is final</li>
</ul>`)
	})
	r.Get("/api/hello", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"app": "new", "hello": name, "request_id": r.Header.Get("X-Request-Id")})
	})
	return r
}

func legacyApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "legacy app: order %s\n", r.PathValue("id"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "legacy app: nothing at %s\n", strings.ReplaceAll(html.EscapeString(r.URL.Path), "\n", ""))
	})
	return mux
}
