// Package scgi owns the SCGI adapter: apps reached as scgi://host:port or scgi+unix:///path/to.sock, spoken
// to in SCGI (a netstring of NUL-separated variables, CONTENT_LENGTH first and SCGI=1, then the raw body),
// one connection per request. The answer is read either as a CGI-style head (Status:, header lines, empty
// line; see cgienv.ReadResponseHeader) or, when it starts with "HTTP/", as an HTTP/1.x response, which is
// what uWSGI's --scgi-socket sends.
//
// The app is mounted WSGI-style (SCRIPT_NAME is the mount prefix, PATH_INFO the rest); request data never
// sets SCRIPT_NAME or any non-HTTP_ variable (cgienv's contract). Options, bodies, timeouts, the response
// head limit and failure statuses are those of package uwsgi (see cgiwire.ParseTarget): timeout,
// read_timeout (the stall limit on the response body), dial_timeout and param.NAME; a
// configured SCGI or CONTENT_LENGTH is refused since the protocol owns them. A variable containing a NUL byte
// cannot be framed and answers 400.
//
// A CGI-style answer without Content-Length ends when the connection closes, so an app dying mid-body can
// only be told apart from a complete answer when it declared its length.
package scgi

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/cgiwire"
	"github.com/switchyard/switchyard/internal/exact"
)

// Kind returns the SCGI kind for a registry: schemes scgi and scgi+unix, mount-aware.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes:    []string{"scgi", "scgi+unix"},
		Factory:    New,
		MountAware: true,
		Summary:    "SCGI app (scgi://host:port, scgi+unix:///path.sock)",
	}
}

// New builds the handler for one SCGI app. The handler holds no connections between requests.
func New(t adapters.Target) (http.Handler, error) {
	cfg, err := cgiwire.ParseTarget(t, "scgi", "SCGI")
	if err != nil {
		return nil, err
	}
	return cgiwire.NewApp(cfg, Protocol(), t.Logger)
}

// Protocol returns the SCGI wire protocol for cgiwire.
func Protocol() cgiwire.Protocol {
	return cgiwire.Protocol{
		Name: "scgi",
		EncodeRequest: func(vars []cgienv.Param) ([]byte, error) {
			return AppendRequest(make([]byte, 0, 64+32*len(vars)), vars)
		},
		ReadResponse: ReadResponse,
	}
}

// ReadResponse reads an SCGI app's answer from br: an HTTP/1.x response when it starts with "HTTP/", else a
// CGI-style head. For the latter, a Content-Length bounds the body and a body cut short fails with
// io.ErrUnexpectedEOF; without one the body runs to the end of the connection. HEAD requests and 1xx, 204
// and 304 answers have no body. A CGI-style head over maxHead bytes (<= 0: cgienv's default) fails with
// cgienv.ErrMalformedResponse; an HTTP/1.x head is not bounded here (cgiwire bounds br's source).
func ReadResponse(br *bufio.Reader, req *http.Request, maxHead int64) (*http.Response, error) {
	start, err := br.Peek(5)
	if err != nil && len(start) == 0 && err != io.EOF {
		return nil, fmt.Errorf("waiting for the response: %w", err) // keeps a timeout recognisable
	}
	if string(start) == "HTTP/" {
		return cgiwire.ReadHTTPResponse(br, req)
	}
	rh, err := cgienv.ReadResponseHeader(br, maxHead)
	if err != nil {
		return nil, err
	}
	resp := &http.Response{
		Status: strconv.Itoa(rh.Status) + " " + http.StatusText(rh.Status), StatusCode: rh.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rh.Header, Request: req, ContentLength: -1, Body: http.NoBody,
	}
	if vv := rh.Header.Values("Content-Length"); len(vv) > 0 {
		n, err := strconv.ParseInt(strings.TrimSpace(vv[0]), 10, 64)
		if err != nil || n < 0 || len(vv) > 1 && !allEqual(vv) {
			return nil, fmt.Errorf("%w: invalid Content-Length %q", cgiwire.ErrMalformedResponse, vv)
		}
		resp.ContentLength = n
	}
	noBody := req.Method == http.MethodHead || rh.Status < 200 || rh.Status == http.StatusNoContent || rh.Status == http.StatusNotModified
	switch {
	case noBody:
		if rh.Status == http.StatusNoContent || rh.Status == http.StatusNotModified || rh.Status < 200 {
			resp.ContentLength = -1
		}
	case resp.ContentLength >= 0:
		resp.Body = io.NopCloser(exact.Reader(br, resp.ContentLength))
	default:
		resp.Body = io.NopCloser(br)
	}
	return resp, nil
}

func allEqual(vv []string) bool {
	for _, v := range vv[1:] {
		if strings.TrimSpace(v) != strings.TrimSpace(vv[0]) {
			return false
		}
	}
	return true
}
