package fastlane

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
)

// Request returns the request net/http's server would hand its handler for h: the canonical field names
// with the Host field taken out into Host, a Pragma: no-cache without Cache-Control completed with
// Cache-Control: no-cache (as http.ReadRequest does), Close as net/http computes it, ctx as its context,
// and body (nil: http.NoBody) as its body. It allocates what an http.Request needs.
func (h *Head) Request(ctx context.Context, remoteAddr string, body io.ReadCloser) (*http.Request, error) {
	target := string(h.Target)
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, err
	}
	hdr := make(http.Header, h.NFields)
	for _, f := range h.Fields[:h.NFields] {
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		if k == "Host" {
			continue
		}
		hdr[k] = append(hdr[k], string(f.Value))
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
	r := &http.Request{
		Method:        string(h.Method),
		URL:           u,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    h.Minor,
		Header:        hdr,
		Body:          body,
		ContentLength: h.ContentLength,
		Close:         h.Close,
		Host:          string(h.Host),
		RemoteAddr:    remoteAddr,
		RequestURI:    target,
	}
	return r.WithContext(ctx), nil
}
