// Package cgienv owns the CGI/1.1 meta-variables (RFC 3875) that the CGI-family adapters (FastCGI, uwsgi,
// SCGI, CGI) hand to an application, filled the way nginx's fastcgi_params and uwsgi_params fill them.
//
// Security contract: the variables are built from the request alone, never from the gateway's own
// environment; the Proxy header is dropped (httpoxy, CVE-2016-5385); header names containing '_' are dropped
// (X_Forwarded_For would otherwise alias HTTP_X_FORWARDED_FOR); HTTP_HOST is the request's Host and nothing
// else; request data can never set SCRIPT_NAME, PATH_INFO or any non-HTTP_ variable because every header is
// prefixed with HTTP_. Configured parameters are applied last and override everything.
package cgienv

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Param is one meta-variable. The slice order is the order variables are sent in.
type Param struct{ Name, Value string }

// Script says how the request path divides for the application.
type Script struct {
	// Name is SCRIPT_NAME: the mount prefix (plus the script's path for FastCGI), "" at the root.
	Name string
	// PathInfo is PATH_INFO: the rest of the path after Name, starting with "/" or empty.
	PathInfo string
	// Filename is SCRIPT_FILENAME, set only when the app runs a file (FastCGI, CGI).
	Filename string
	// DocumentRoot is DOCUMENT_ROOT, set only when known.
	DocumentRoot string
}

// SplitMount divides the request path for an app mounted under mount (no trailing slash; "" for the root).
// The request path is expected to be normalised by the router already and to lie under mount; a path that
// does not is passed whole as PATH_INFO.
func SplitMount(path, mount string) Script {
	if mount == "" || mount == "/" {
		return Script{PathInfo: path}
	}
	if path == mount {
		return Script{Name: mount}
	}
	if strings.HasPrefix(path, mount+"/") {
		return Script{Name: mount, PathInfo: path[len(mount):]}
	}
	return Script{PathInfo: path}
}

// Build returns the meta-variables for r. extra (configured parameters) override derived values by name.
func Build(r *http.Request, s Script, extra []Param) []Param {
	p := make([]Param, 0, 24+len(r.Header)+len(extra))
	add := func(n, v string) { p = append(p, Param{n, v}) }

	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", "switchyard")
	add("SERVER_PROTOCOL", r.Proto)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_SCHEME", Scheme(r))
	if Scheme(r) == "https" {
		add("HTTPS", "on")
	}
	uri := r.URL.RequestURI()
	add("REQUEST_URI", uri)
	add("QUERY_STRING", r.URL.RawQuery)
	add("DOCUMENT_URI", s.Name+s.PathInfo)
	add("SCRIPT_NAME", s.Name)
	add("PATH_INFO", s.PathInfo)
	if s.Filename != "" {
		add("SCRIPT_FILENAME", s.Filename)
	}
	if s.DocumentRoot != "" {
		add("DOCUMENT_ROOT", s.DocumentRoot)
	}
	if s.DocumentRoot != "" && s.PathInfo != "" {
		add("PATH_TRANSLATED", s.DocumentRoot+s.PathInfo)
	}

	host, port := splitHostPort(r.RemoteAddr)
	add("REMOTE_ADDR", host)
	add("REMOTE_PORT", port)
	sname, sport := serverNamePort(r)
	add("SERVER_NAME", sname)
	add("SERVER_PORT", sport)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, _ := splitHostPort(la.String()); h != "" {
			add("SERVER_ADDR", h)
		}
	}

	if ct := r.Header.Get("Content-Type"); ct != "" {
		add("CONTENT_TYPE", ct)
	}
	if r.ContentLength >= 0 && (r.ContentLength > 0 || r.Body != nil && r.Body != http.NoBody || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		add("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}

	add("HTTP_HOST", r.Host)
	for name, vals := range r.Header {
		if !forwardableHeader(name) {
			continue
		}
		v := strings.Join(vals, ", ")
		if name == "Cookie" {
			v = strings.Join(vals, "; ")
		}
		add(headerVar(name), v)
	}

	for _, e := range extra {
		replaced := false
		for i := range p {
			if p[i].Name == e.Name {
				p[i].Value = e.Value
				replaced = true
			}
		}
		if !replaced {
			p = append(p, e)
		}
	}
	return p
}

// Scheme is "https" when the request arrived over TLS or a trusted proxy said so (the router removes
// X-Forwarded-Proto from untrusted peers before any adapter runs), else "http".
func Scheme(r *http.Request) string {
	if r.TLS != nil || strings.EqualFold(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto"))), "https") {
		return "https"
	}
	return "http"
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		return v[:i]
	}
	return v
}

// forwardableHeader says whether a request header becomes an HTTP_* variable. Names are compared in
// canonical form: net/http canonicalises what it parses, but a handler in front may set "PROXY" directly,
// which would otherwise still become HTTP_PROXY (httpoxy).
func forwardableHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Proxy", "Host", "Content-Type", "Content-Length", "Connection", "Transfer-Encoding",
		"Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Connection", "Http2-Settings":
		return false
	}
	if name == "" || strings.IndexByte(name, '_') >= 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func headerVar(name string) string {
	b := make([]byte, 0, len(name)+5)
	b = append(b, "HTTP_"...)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return h, p
}

// serverNamePort takes SERVER_NAME from the request's Host (without port) and SERVER_PORT from the Host's
// port, else the listener's port, else the scheme's default.
func serverNamePort(r *http.Request) (string, string) {
	host := r.Host
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	if port == "" {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			_, port = splitHostPort(la.String())
		}
	}
	if port == "" {
		port = "80"
		if Scheme(r) == "https" {
			port = "443"
		}
	}
	return strings.TrimSuffix(strings.ToLower(name), "."), port
}
