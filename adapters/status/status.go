// Package status owns the status adapter: status:403 answers that status itself, with no upstream. It denies
// a path or a host, or retires a route. Options: body (the response text, default the status text) and
// location (for 3xx: the redirect target).
package status

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/switchyard/switchyard/adapters"
)

// Kind returns the registry entry for status: apps.
func Kind() adapters.Kind {
	return adapters.Kind{Schemes: []string{"status"}, Factory: New, Summary: "answers a fixed status"}
}

// New builds a status answer for t (status:NNN).
func New(t adapters.Target) (http.Handler, error) {
	code, err := strconv.Atoi(t.URL.Opaque)
	if err != nil || code < 200 || code > 599 {
		return nil, fmt.Errorf("expected status:NNN with NNN from 200 to 599")
	}
	body := t.Options.String("body", strconv.Itoa(code)+" "+http.StatusText(code))
	loc := t.Options.String("location", "")
	if loc != "" && (code < 300 || code > 399) {
		return nil, fmt.Errorf("option location is only for 3xx statuses")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loc != "" {
			w.Header().Set("Location", loc)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		if r.Method != http.MethodHead && code != http.StatusNoContent && code != http.StatusNotModified {
			fmt.Fprintln(w, body)
		}
	}), nil
}
