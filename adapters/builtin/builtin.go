// Package builtin assembles the registry of every adapter kind shipped with Switchyard. It is the one place
// that imports them all, so programs that want fewer kinds can build their own adapters.Registry instead.
package builtin

import (
	"log/slog"
	"net/http"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgi"
	"github.com/switchyard/switchyard/adapters/fastcgi"
	"github.com/switchyard/switchyard/adapters/httpproxy"
	"github.com/switchyard/switchyard/adapters/inprocess"
	"github.com/switchyard/switchyard/adapters/scgi"
	"github.com/switchyard/switchyard/adapters/static"
	"github.com/switchyard/switchyard/adapters/status"
	"github.com/switchyard/switchyard/adapters/uwsgi"
)

// Registry returns a registry with every built-in kind, plus the in-process handlers in inproc served as
// inproc://NAME.
func Registry(logger *slog.Logger, inproc map[string]http.Handler) *adapters.Registry {
	r := adapters.NewRegistry(logger)
	r.MustRegister(httpproxy.Kind())
	r.MustRegister(status.Kind())
	r.MustRegister(fastcgi.Kind())
	r.MustRegister(static.Kind())
	r.MustRegister(cgi.Kind())
	r.MustRegister(uwsgi.Kind())
	r.MustRegister(scgi.Kind())
	r.MustRegister(inprocess.Kind(inproc))
	return r
}
