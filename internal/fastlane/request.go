package fastlane

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"unsafe"
)

// Request returns the request net/http's server would hand its handler for h, parsed from buf (the
// buffer Parse read h from): the canonical field names with the Host field taken out into Host, a
// Pragma: no-cache without Cache-Control completed with Cache-Control: no-cache (as http.ReadRequest
// does), the URL as url.ParseRequestURI makes it of the target, Close as net/http computes it, ctx as its
// context, and body (nil: http.NoBody) as its body. Every string is a piece of one copy of the head, and
// the field values share one backing array, as net/textproto's do: six allocations in all, whatever the
// number of fields (more when a name repeats or is not in canonical form).
func (h *Head) Request(ctx context.Context, buf []byte, remoteAddr string, body io.ReadCloser) *http.Request {
	head := string(buf[:h.Size])
	sub := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
		return head[off : off+len(b)]
	}
	hdr := make(http.Header, h.NFields)
	strs := make([]string, h.NFields)
	for i, f := range h.Fields[:h.NFields] {
		k := textproto.CanonicalMIMEHeaderKey(sub(f.Name))
		if k == "Host" {
			continue
		}
		v := sub(f.Value)
		if vv, ok := hdr[k]; ok {
			hdr[k] = append(vv, v)
			continue
		}
		strs[i] = v
		hdr[k] = strs[i : i+1 : i+1]
	}
	if hp, ok := hdr["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	proto := "HTTP/1.1"
	if h.Minor == 0 {
		proto = "HTTP/1.0"
	}
	if body == nil || h.ContentLength == 0 {
		body = http.NoBody
	}
	// The target is origin-form with an unescaped path (Parse's rules), so url.ParseRequestURI would give
	// just Path and the query: RawPath is empty, and a lone trailing '?' is ForceQuery.
	u := &url.URL{Path: sub(h.Path)}
	if h.Query != nil {
		u.RawQuery = sub(h.Query)
		u.ForceQuery = len(h.Query) == 0
	}
	// r stays on the stack: WithContext makes the one copy on the heap, the only way to set the context.
	r := http.Request{
		Method:        sub(h.Method),
		URL:           u,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    h.Minor,
		Header:        hdr,
		Body:          body,
		ContentLength: h.ContentLength,
		Close:         h.Close,
		Host:          sub(h.Host),
		RemoteAddr:    remoteAddr,
		RequestURI:    sub(h.Target),
	}
	return r.WithContext(ctx)
}
