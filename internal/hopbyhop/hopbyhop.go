// Package hopbyhop owns the one list of hop-by-hop header fields (RFC 9110 section 7.6.1) that the
// gateway removes from every response it relays from an app, whatever the app's protocol, and the copy
// that applies it. A field that an app's Connection field names is hop-by-hop too: an app answering
// "Connection: X-Secret" with "X-Secret: internal" never gets X-Secret to the client.
//
// It is the same list httputil.ReverseProxy removes, so the HTTP adapter's direct path, the
// ReverseProxy path, the response relay (internal/relay: FastCGI, uwsgi, SCGI) and CGI agree.
package hopbyhop

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Is reports whether the canonical field name k is hop-by-hop by itself.
func Is(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// Listed returns the canonical names h's Connection field lists, or nil without one.
func Listed(h http.Header) []string {
	vv := h["Connection"]
	if len(vv) == 0 {
		return nil
	}
	var names []string
	for _, f := range vv {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				names = append(names, textproto.CanonicalMIMEHeaderKey(sf))
			}
		}
	}
	return names
}

// In reports whether k is one of names.
func In(names []string, k string) bool {
	for _, n := range names {
		if n == k {
			return true
		}
	}
	return false
}

// CopyResponse adds src's end-to-end fields to dst: every field but the hop-by-hop ones and those src's
// Connection field names. Value slices are shared with src (capacity clipped, so a later append to dst
// copies).
func CopyResponse(dst, src http.Header) {
	named := Listed(src)
	for k, vv := range src {
		if Is(k) || named != nil && In(named, k) {
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv[:len(vv):len(vv)]
		}
	}
}
