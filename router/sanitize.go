package router

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// SanitizeConfig configures Sanitize.
type SanitizeConfig struct {
	// TrustedProxies are the peers whose forwarding headers are kept.
	TrustedProxies []netip.Prefix
	// MaxBodySize limits request bodies; 0 means unlimited.
	MaxBodySize int64
}

// forwardingHeaders are the headers through which a client could claim another identity, scheme, host or
// mount point. From an untrusted peer they are deleted, so no application ever believes a spoofed value.
var forwardingHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Url-Scheme",
	"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "X-Original-Url", "X-Rewrite-Url", "X-Original-Forwarded-For",
}

// Sanitize returns the front-door middleware that every request passes before routing:
//
//   - the path is canonicalised with CleanPath (400 when refused) and RawPath cleared, so routing and the
//     application see one and the same path;
//   - an invalid Host header gets 400;
//   - forwarding headers (forwardingHeaders) are deleted unless the peer is a trusted proxy;
//   - header names containing '_' are deleted: CGI-style apps map "X_Forwarded_For" and "X-Forwarded-For"
//     to the same variable, which would let a client smuggle a forwarding header past the check above;
//   - Upgrade is allowed for "websocket" only; any other token (h2c in particular, which would hand the client
//     a raw HTTP/2 tunnel past the route table) is removed along with HTTP2-Settings, and the request goes on
//     as plain HTTP;
//   - a request with a chunked body is answered with Connection: close. Go's server silently drops a
//     Content-Length that arrives next to Transfer-Encoding: chunked; closing the connection afterwards means
//     bytes a CL-parsing front end counted differently can never be read as a second request (request
//     smuggling, RFC 9112 section 6.1);
//   - a body declared larger than MaxBodySize gets 413 before anything is sent on; a chunked body is cut
//     there (http.MaxBytesReader, whose error the adapters turn into 413).
func Sanitize(cfg SanitizeConfig) func(http.Handler) http.Handler {
	trusted := append([]netip.Prefix(nil), cfg.TrustedProxies...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clean, err := CleanPath(r.URL.Path)
			if err == nil && r.URL.RawPath != "" && hasEncodedSeparators(r.URL.RawPath) {
				err = ErrBadPath
			}
			if err != nil {
				http.Error(w, "400 bad request path", http.StatusBadRequest)
				return
			}
			if _, err := CanonicalHost(r.Host); err != nil {
				http.Error(w, "400 bad Host header", http.StatusBadRequest)
				return
			}
			if cfg.MaxBodySize > 0 && r.ContentLength > cfg.MaxBodySize {
				w.Header().Set("Connection", "close")
				http.Error(w, "413 request body larger than "+strconv.FormatInt(cfg.MaxBodySize, 10)+" bytes", http.StatusRequestEntityTooLarge)
				return
			}
			if clean != r.URL.Path || r.URL.RawPath != "" {
				r.URL.Path = clean
				r.URL.RawPath = ""
			}
			if !peerTrusted(trusted, r.RemoteAddr) {
				for _, h := range forwardingHeaders {
					delete(r.Header, h)
				}
			}
			for name := range r.Header {
				if strings.IndexByte(name, '_') >= 0 {
					delete(r.Header, name)
				}
			}
			if up, ok := r.Header["Upgrade"]; ok && !(len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket")) {
				delete(r.Header, "Upgrade")
				delete(r.Header, "Http2-Settings")
			}
			delete(r.Header, "Http2-Settings")
			if len(r.TransferEncoding) > 0 {
				w.Header().Set("Connection", "close")
			}
			if cfg.MaxBodySize > 0 && r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodySize)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// PeerTrusted reports whether the connection's peer address lies in one of the trusted prefixes.
func peerTrusted(trusted []netip.Prefix, remoteAddr string) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
