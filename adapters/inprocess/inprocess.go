// Package inprocess owns the in-process adapter: Go http.Handlers (a chi, gin, echo or stdlib app) mounted
// by name as inproc://NAME, for programs that embed the gateway as a library and for the built-in demo.
// The handler receives the request exactly as the router passes it; nothing is copied or serialised.
package inprocess

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/adapters"
)

// Kind returns the registry entry for inproc:// apps, serving the handlers in apps by name. The map is
// copied; later changes to it are not seen.
func Kind(apps map[string]http.Handler) adapters.Kind {
	own := make(map[string]http.Handler, len(apps))
	names := make([]string, 0, len(apps))
	for k, v := range apps {
		own[k] = v
		names = append(names, k)
	}
	sort.Strings(names)
	return adapters.Kind{
		Schemes: []string{"inproc"},
		Summary: "Go http.Handler in this process",
		Factory: func(t adapters.Target) (http.Handler, error) {
			name := t.URL.Host
			if h, ok := own[name]; ok && h != nil {
				return h, nil
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("no in-process application is registered (inproc:// apps are registered from Go code)")
			}
			return nil, fmt.Errorf("no in-process application named %q: expected one of %s", name, strings.Join(names, ", "))
		},
	}
}
