// Package httpproxy owns the HTTP adapter: applications reached over HTTP/1.1 on TCP (http://, https://)
// or on a unix socket (unix:///path.sock), through net/http/httputil.ReverseProxy with a tuned keep-alive
// pool per application.
//
// What is sent on: the request as the router left it (cleaned path, sanitised headers), with hop-by-hop
// headers removed (ReverseProxy does this, including headers named in Connection), the client's Host kept
// (host_header=upstream sends the upstream's instead), and X-Forwarded-For/-Host/-Proto set from the
// connection: a trusted proxy's values (the router deletes untrusted ones) are extended, never replaced.
// The request body is streamed, never buffered. What comes back: the response streamed to the client,
// flushed at once for event streams and bodies of unknown length; 1xx answers forwarded; a WebSocket
// upgrade tunnelled (websocket=false refuses it by stripping the Upgrade header).
package httpproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/adapters"
)

// DefaultTimeout is the time an app has to send its response header when neither the app's timeout option
// nor the gateway default sets one.
const DefaultTimeout = 60 * time.Second

// Kind returns the registry entry for http://, https:// and unix:// apps.
//
// Options: timeout (time to the response header, then 504; default the gateway's upstream timeout),
// dial_timeout (default 5s), websocket (allow WebSocket upgrades, default true), host_header
// ("client", the default, or "upstream"), max_idle_conns (idle keep-alive connections kept, default 256),
// tls_server_name and tls_insecure_skip_verify (https only).
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes: []string{"http", "https", "unix"},
		Factory: New,
		Summary: "HTTP/1.1 over TCP or a unix socket",
	}
}

// Proxy is one HTTP application. It owns its connection pool; Close releases idle connections.
type Proxy struct {
	name, upstream string
	websocket      bool
	rp             *httputil.ReverseProxy
	transport      *http.Transport
}

// New builds the Proxy for t.
func New(t adapters.Target) (http.Handler, error) {
	o := t.Options
	timeout := t.DefaultTimeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	timeout, err := o.Duration("timeout", timeout)
	if err != nil {
		return nil, err
	}
	dialTimeout, err := o.Duration("dial_timeout", 5*time.Second)
	if err != nil {
		return nil, err
	}
	websocket, err := o.Bool("websocket", true)
	if err != nil {
		return nil, err
	}
	hostHeader := o.String("host_header", "client")
	if hostHeader != "client" && hostHeader != "upstream" {
		return nil, fmt.Errorf("option host_header=%q: expected client or upstream", hostHeader)
	}
	maxIdle, err := o.Int("max_idle_conns", 256, 0, 1<<16)
	if err != nil {
		return nil, err
	}

	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil, // never take HTTP_PROXY from the gateway's environment
		DialContext:            dialer.DialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // the client's Accept-Encoding is the app's business
		MaxResponseHeaderBytes: 256 << 10,
		ReadBufferSize:         32 << 10,
		WriteBufferSize:        32 << 10,
	}

	target := &url.URL{Scheme: t.URL.Scheme, Host: t.URL.Host, Path: t.URL.Path, RawPath: t.URL.RawPath}
	upstream := t.URL.Host
	switch t.URL.Scheme {
	case "http", "https":
		if t.URL.Host == "" {
			return nil, fmt.Errorf("no host: expected %s://host:port", t.URL.Scheme)
		}
		if t.URL.User != nil {
			return nil, fmt.Errorf("credentials in the URL are not supported: use a header option or the app's own auth")
		}
		if t.URL.Scheme == "https" {
			skip, err := o.Bool("tls_insecure_skip_verify", false)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = &tls.Config{ServerName: o.String("tls_server_name", ""), InsecureSkipVerify: skip, MinVersion: tls.VersionTLS12}
		}
	case "unix":
		if t.URL.Host != "" || t.URL.Path == "" {
			return nil, fmt.Errorf("expected unix:///absolute/path.sock")
		}
		sock := t.URL.Path
		upstream = "unix:" + sock
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
		target = &url.URL{Scheme: "http", Host: "localhost"}
	}
	if strings.HasSuffix(target.Path, "/") {
		target.Path = strings.TrimSuffix(target.Path, "/")
	}

	p := &Proxy{name: t.Raw, upstream: upstream, websocket: websocket, transport: tr}
	logger := t.Logger
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if hostHeader == "client" {
				pr.Out.Host = pr.In.Host
			}
			setForwarded(pr)
		},
		Transport:  tr,
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			adapters.Fail(w, r, logger, p.name, p.upstream, err)
		},
	}
	return p, nil
}

// setForwarded sets X-Forwarded-For/-Host/-Proto. ReverseProxy has already removed the client's values from
// the outbound request; the inbound ones only survive the router when the peer is a trusted proxy, so
// they are extended here rather than believed blindly.
func setForwarded(pr *httputil.ProxyRequest) {
	in := pr.In
	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = ""
	}
	xff := strings.Join(in.Header["X-Forwarded-For"], ", ")
	switch {
	case xff != "" && peer != "":
		xff += ", " + peer
	case peer != "":
		xff = peer
	}
	if xff != "" {
		pr.Out.Header.Set("X-Forwarded-For", xff)
	}
	if h := in.Header.Get("X-Forwarded-Host"); h != "" {
		pr.Out.Header.Set("X-Forwarded-Host", h)
	} else if in.Host != "" {
		pr.Out.Header.Set("X-Forwarded-Host", in.Host)
	}
	if p := in.Header.Get("X-Forwarded-Proto"); p != "" {
		pr.Out.Header.Set("X-Forwarded-Proto", p)
	} else if in.TLS != nil {
		pr.Out.Header.Set("X-Forwarded-Proto", "https")
	} else {
		pr.Out.Header.Set("X-Forwarded-Proto", "http")
	}
}

// ServeHTTP proxies r to the application.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.websocket && r.Header.Get("Upgrade") != "" {
		r = r.Clone(r.Context())
		r.Header.Del("Upgrade")
	}
	p.rp.ServeHTTP(w, r)
}

// Upstream is the address the proxy connects to ("127.0.0.1:8000" or "unix:/run/app.sock").
func (p *Proxy) Upstream() string { return p.upstream }

// Close closes idle pooled connections. Requests in flight finish on their own connections.
func (p *Proxy) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// bufferPool recycles the 32 KiB copy buffers ReverseProxy uses for response bodies.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
