// Package uwsgi owns the uwsgi adapter: apps reached as uwsgi://host:port or uwsgi+unix:///path/to.sock,
// spoken to in uWSGI's binary protocol (a 4-byte header, a block of length-prefixed variables, then the raw
// request body; the answer is plain HTTP/1.x), with one connection per request as uWSGI closes after each.
//
// The app is mounted WSGI-style: SCRIPT_NAME is the mount prefix and PATH_INFO the rest of the path, and
// UWSGI_SCHEME carries the request's scheme so wsgi.url_scheme (and every URL the app builds) is right.
// Request data never sets SCRIPT_NAME or any UWSGI_* variable: headers only ever become HTTP_* variables
// (cgienv's contract); uWSGI honours UWSGI_SCRIPT, UWSGI_CHDIR and friends to pick or load apps, so a client
// able to set them could run other code. Operators set such variables with param.NAME options.
//
// Options (in the APP URL's query):
//
//	timeout=60s        how long the app may stay silent before its response head is complete, counted
//	                   from the start of the request and renewed whenever a piece of the request body is
//	                   written to it, so a slow upload is not a timeout (0: none) -> 504; defaults to the
//	                   gateway's upstream timeout
//	read_timeout=60s   how long the app may stall (send no byte) in the middle of its response body: the
//	                   client's response is then aborted (a cut stream, never a complete-looking one) and
//	                   the connection closed; a stream with heartbeats lives (0: none); defaults to the
//	                   gateway's GATEWAY_UPSTREAM_READ_TIMEOUT
//	dial_timeout=5s    wait for the connection -> 504; a refused connection -> 502
//	param.NAME=value   send NAME=value with every request, overriding a derived variable of that name
//	                   (e.g. param.UWSGI_APPID=site); CONTENT_LENGTH cannot be set
//	modifier1=0        the packet's modifier1 (0: WSGI/the default app; other values select uWSGI plugins)
//
// A response head larger than the gateway's GATEWAY_MAX_RESPONSE_HEADER_SIZE (256 KiB by default) answers
// 502; reading stops there, so an endless head is never held. Variables larger than the protocol's 64 KiB
// block answer 431 (uWSGI also needs --buffer-size at least as
// large as the block it receives). Responses without Content-Length or chunked framing are delimited by the
// connection closing, so an app that dies mid-body can only be detected when it declared its length.
package uwsgi

import (
	"bufio"
	"net/http"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/cgiwire"
)

// Kind returns the uwsgi kind for a registry: schemes uwsgi and uwsgi+unix, mount-aware.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes:    []string{"uwsgi", "uwsgi+unix"},
		Factory:    New,
		MountAware: true,
		Summary:    "uWSGI app over the uwsgi protocol (uwsgi://host:port, uwsgi+unix:///path.sock)",
	}
}

// New builds the handler for one uwsgi app; see the package comment for the URL forms and options. The
// handler holds no connections between requests.
func New(t adapters.Target) (http.Handler, error) {
	cfg, err := cgiwire.ParseTarget(t, "uwsgi")
	if err != nil {
		return nil, err
	}
	opts := t.Options
	if opts == nil {
		opts = &adapters.Options{}
	}
	m1, err := opts.Int("modifier1", 0, 0, 255)
	if err != nil {
		return nil, err
	}
	return cgiwire.NewApp(cfg, Protocol(uint8(m1)), t.Logger)
}

// Protocol returns the uwsgi wire protocol for cgiwire, sending packets with modifier1 (0 for WSGI) and
// modifier2 0.
func Protocol(modifier1 uint8) cgiwire.Protocol {
	return cgiwire.Protocol{
		Name: "uwsgi",
		RequestVars: func(r *http.Request) []cgienv.Param {
			return []cgienv.Param{{Name: "UWSGI_SCHEME", Value: cgienv.Scheme(r)}}
		},
		EncodeRequest: func(vars []cgienv.Param) ([]byte, error) {
			return AppendPacket(make([]byte, 0, HeaderSize+VarsSize(vars)), modifier1, 0, vars)
		},
		ReadResponse: readResponse,
	}
}

// readResponse reads uWSGI's plain HTTP/1.x answer; cgiwire bounds its size on br's source.
func readResponse(br *bufio.Reader, req *http.Request, _ int64) (*http.Response, error) {
	return cgiwire.ReadHTTPResponse(br, req)
}
