// Package cgi owns the CGI adapter: cgi:///path/to/program runs that program once per request through the
// standard library's net/http/cgi.Handler, with the mount prefix as SCRIPT_NAME and the rest of the path as
// PATH_INFO (the kind is MountAware).
//
// Environment contract (the program never sees the gateway's own environment):
//   - The meta-variables come from cgienv.Build (the same ones the FastCGI, uwsgi and SCGI adapters send),
//     with SCRIPT_FILENAME set to the program, followed by the configured variables, which override them.
//   - Request headers reach the program only as cgienv's HTTP_* variables: the request handed to the stdlib
//     carries no header at all, so the stdlib's own header mapping (which would turn X_Forwarded_For into
//     HTTP_X_FORWARDED_FOR, and only drops Proxy) contributes nothing. cgienv drops Proxy (httpoxy,
//     CVE-2016-5385) and every header name containing '_' or other characters outside [A-Za-z0-9-].
//   - The stdlib adds variables of its own: REMOTE_HOST (the client IP), the host's PATH and, on Linux, the
//     host's LD_LIBRARY_PATH. PATH is always replaced (option env.PATH, default DefaultPath) and
//     LD_LIBRARY_PATH is always replaced (option env.LD_LIBRARY_PATH, default empty, which the dynamic
//     loader ignores). InheritEnv is left empty.
//
// Bodies: a body of known length is streamed to the program's stdin while its output streams back (the
// connection is switched to full duplex, so the server does not consume the body once the header is out).
// A request body of unknown length (chunked, or HTTP/2 without Content-Length), which the stdlib
// refuses, is spooled first, in memory up to 1 MiB and then to an unlinked temporary file, and handed over
// with its length. A body larger than max_body (declared or spooled) is answered 413.
//
// Failures: a program that cannot be started, prints no header block, prints garbage, omits Content-Type
// (with no Status or Location), sends a Status outside 200-599, or dies before its header is complete gives
// 502. A program still running
// after timeout is killed with its whole process group (through coreutils timeout(1), since the stdlib keeps
// the process to itself) and gives 504 if it had sent no header yet; if the header was already sent, the
// response is aborted (http.ErrAbortHandler), never finished as if complete. The program's stderr is logged
// line by line through the app's slog logger.
//
// Limits of the stdlib handler: it does not watch the request context, so a client that goes away before
// the program writes its header leaves the program running until it answers or the timeout kills it; when a
// client goes away mid-body the stdlib kills its direct child (timeout(1) when a timeout is set) and the
// program itself ends on SIGPIPE at its next write. The stdlib parses the program's output itself
// (FuzzProgramOutput drives that parser through a real program).
//
// Options:
//   - env.NAME=VALUE: one environment variable for the program per option (env.PATH, env.PYTHONPATH, ...).
//     There is no list form and no way to inherit the gateway's variables.
//   - dir: the working directory (absolute, must exist), default the program's directory.
//   - timeout: kill the program past it (default the gateway's upstream timeout, else DefaultTimeout);
//     0 disables the limit.
//   - max_body: the largest request body accepted (default DefaultMaxBody).
package cgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/clientbody"
	"github.com/switchyard/switchyard/internal/spool"
)

const (
	// DefaultPath is the program's PATH unless env.PATH is configured.
	DefaultPath = "/usr/local/bin:/usr/bin:/bin"
	// DefaultTimeout bounds a program's run time when neither the timeout option nor the gateway's upstream
	// timeout says otherwise.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxBody is the largest request body accepted unless max_body says otherwise.
	DefaultMaxBody = 64 << 20
	// memSpool is how much of a body of unknown length is held in memory before spooling to a file.
	memSpool = 1 << 20
)

// timeoutPrograms are where coreutils' timeout(1) is looked for (never through the gateway's PATH).
var timeoutPrograms = []string{"/usr/bin/timeout", "/bin/timeout"}

// Kind returns the registry entry for cgi: apps.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes:    []string{"cgi"},
		Factory:    func(t adapters.Target) (http.Handler, error) { return New(t) },
		MountAware: true,
		Summary:    "runs a CGI program per request (cgi:///path/to/program)",
	}
}

// Handler runs one CGI program. It holds no resources between requests.
type Handler struct {
	app        string
	program    string
	dir        string
	mount      string
	extra      []cgienv.Param
	timeout    time.Duration
	timeoutBin string
	maxBody    int64
	logger     *slog.Logger
}

// New builds the handler for t. The program must exist and be executable when New runs.
func New(t adapters.Target) (*Handler, error) {
	u := t.URL
	if u.Opaque != "" || u.Host != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("expected cgi:///absolute/path/to/program")
	}
	h := &Handler{app: t.Name, program: filepath.Clean(u.Path), mount: strings.TrimSuffix(t.Mount, "/"), logger: t.Logger}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	fi, err := os.Stat(h.program)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the message names the path itself
		}
		return nil, fmt.Errorf("program %s: %v: expected an executable file", h.program, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 || syscall.Access(h.program, 1 /* X_OK */) != nil {
		return nil, fmt.Errorf("program %s is not an executable file", h.program)
	}

	h.dir = t.Options.String("dir", filepath.Dir(h.program))
	if !filepath.IsAbs(h.dir) {
		return nil, fmt.Errorf("option dir=%q: expected an absolute path", h.dir)
	}
	if fi, err := os.Stat(h.dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("option dir=%q: not an existing directory", h.dir)
	}

	env := map[string]string{"PATH": DefaultPath, "LD_LIBRARY_PATH": ""}
	var names []string
	for _, key := range t.Options.Family("env.") {
		name, _ := strings.CutPrefix(key, "env.")
		if !validEnvName(name) {
			return nil, fmt.Errorf("option %s: expected env.NAME with NAME made of letters, digits and '_'", key)
		}
		v := t.Options.String(key, "")
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("option %s: the value contains NUL", key)
		}
		env[name] = v
	}
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h.extra = append(h.extra, cgienv.Param{Name: name, Value: env[name]})
	}

	def := DefaultTimeout
	if t.DefaultTimeout > 0 {
		def = t.DefaultTimeout
	}
	if h.timeout, err = t.Options.Duration("timeout", def); err != nil {
		return nil, err
	}
	if h.timeout > 0 {
		for _, p := range timeoutPrograms {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				h.timeoutBin = p
				break
			}
		}
		if h.timeoutBin == "" {
			return nil, fmt.Errorf("option timeout needs coreutils timeout(1) at %s (or set timeout=0)", strings.Join(timeoutPrograms, " or "))
		}
	}
	if h.maxBody, err = t.Options.Size("max_body", DefaultMaxBody); err != nil {
		return nil, err
	}
	if h.maxBody <= 0 {
		return nil, fmt.Errorf("option max_body: expected a positive size")
	}
	return h, nil
}

func validEnvName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.ContentLength > h.maxBody {
		h.fail(w, r, &http.MaxBytesError{Limit: h.maxBody})
		return
	}
	req := r.Clone(r.Context())
	if r.ContentLength < 0 || len(r.TransferEncoding) > 0 {
		body, err := spool.Read(r.Context(), r.Body, spool.Options{Memory: memSpool, Limit: h.maxBody})
		if err != nil {
			h.fail(w, r, failure.ClientBody(err)) // 413, 408, 499, 500 for the gateway's storage, else 400
			return
		}
		defer body.Close()
		req.Body, req.ContentLength, req.TransferEncoding = body, body.Len(), nil
	}

	script := cgienv.SplitMount(r.URL.Path, h.mount)
	script.Filename = h.program
	params := cgienv.Build(req, script, h.extra)
	env := make([]string, 0, len(params))
	for _, p := range params {
		env = append(env, p.Name+"="+p.Value)
	}
	// Every header already became an HTTP_* variable above, filtered; the stdlib's own mapping must add none.
	req.Header = http.Header{}

	st := &runState{}
	stderr := &lineLogger{log: func(line string) {
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "cgi stderr",
			slog.String("app", h.app), slog.String("upstream", h.program), slog.String("line", line))
	}}
	ch := &cgi.Handler{
		Path:   h.program,
		Root:   h.mount,
		Dir:    h.dir,
		Env:    env,
		Logger: log.New(st, "", 0),
		Stderr: stderr,
	}
	if h.timeoutBin != "" {
		// timeout(1) puts itself and the program in a new process group and kills the whole group, so a
		// shell script's children cannot keep the output pipe open past the deadline.
		ch.Path = h.timeoutBin
		ch.Args = []string{"--signal=KILL", strconv.FormatFloat(h.timeout.Seconds(), 'f', 3, 64) + "s", h.program}
	}
	var cb *countingBody
	if req.Body == r.Body && req.ContentLength != 0 {
		// The stdlib feeds the client's body to the program's stdin from a goroutine while it streams the
		// program's output. An HTTP/1 server that sees the response header written before the body was read
		// discards the unread body (net/http's "consume the request body before replying"), so a program
		// that prints its header before reading stdin (any CGI script that streams) would race the server
		// for the body and often read EOF at once. Full duplex tells the server the handler still reads it.
		// HTTP/2 is always full duplex; a writer without the capability only returns ErrNotSupported.
		if http.NewResponseController(w).EnableFullDuplex() == nil {
			// Under full duplex the handler must end the client's body itself (clientbody.End): a program
			// that exits without reading all of its stdin leaves a rest net/http would otherwise read
			// after the handler returned, and then panic at the connection's next request.
			cb = &countingBody{ReadCloser: r.Body}
			req.Body = cb
		}
	}
	cw := &cgiWriter{w: w, hdr: http.Header{}}
	ch.ServeHTTP(cw, req) // returns once the program and the copy of the body to its stdin are done
	if cb != nil {
		clientbody.End(w, r.Body, r.ContentLength-cb.n, false, cb.err)
	}
	stderr.flush()

	timedOut := h.timeout > 0 && time.Since(start) >= h.timeout
	fatal, copyErr, cause := st.result()
	if cw.committed {
		if timedOut || copyErr {
			if r.Context().Err() != nil {
				return // the client went away mid-body; nothing left to tell it
			}
			if timedOut {
				cause = "timed out after " + h.timeout.String() + " while sending the body"
			}
			h.logger.LogAttrs(r.Context(), slog.LevelWarn, "upstream response aborted",
				slog.String("app", h.app), slog.String("upstream", h.program),
				slog.String("path", r.URL.Path), slog.String("cause", cause))
			panic(http.ErrAbortHandler)
		}
		return
	}
	switch {
	case cw.invalid:
		h.fail(w, r, fmt.Errorf("the program sent the invalid status %d", cw.status))
	case timedOut:
		h.fail(w, r, fmt.Errorf("no response header within %v: %w", h.timeout, context.DeadlineExceeded))
	case fatal:
		h.fail(w, r, errors.New(cause))
	default:
		cw.commit()
	}
}

// countingBody counts what the program's stdin copy reads of the client's body and keeps the first error
// other than io.EOF; the counts are looked at once the copy is done.
type countingBody struct {
	io.ReadCloser
	n   int64
	err error
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	failure.Answer(w, r, h.logger, h.app, h.program, err)
}

// cgiWriter stands between the stdlib handler and the client. The stdlib answers its own failures with a
// bare 500 (and sometimes with nothing at all), which the adapter must turn into 502: so a 500 is held until
// the body starts or the handler returns, and the adapter then decides from what the stdlib logged. Any other
// status can only come from the program and is sent at once. Every body write is flushed, so output streams
// as the program prints it. cgiWriter deliberately has no ReadFrom, so the stdlib's copy goes through Write.
type cgiWriter struct {
	w         http.ResponseWriter
	hdr       http.Header
	status    int
	committed bool
	invalid   bool // the program sent a status outside 200-599
}

var errInvalidStatus = errors.New("invalid status")

func (cw *cgiWriter) Header() http.Header { return cw.hdr }

func (cw *cgiWriter) WriteHeader(code int) {
	if cw.committed || cw.status != 0 {
		return
	}
	cw.status = code
	if code < 200 || code > 599 {
		// Status: 001 would panic in net/http; a 1xx cannot be a CGI program's final answer either.
		cw.invalid = true
		return
	}
	if code != http.StatusInternalServerError {
		cw.commit()
	}
}

func (cw *cgiWriter) commit() {
	if cw.committed {
		return
	}
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	dst := cw.w.Header()
	for k, v := range cw.hdr {
		dst[k] = v
	}
	cw.w.WriteHeader(cw.status)
	cw.committed = true
	_ = http.NewResponseController(cw.w).Flush()
}

func (cw *cgiWriter) Write(p []byte) (int, error) {
	if cw.invalid {
		return 0, errInvalidStatus // the stdlib then kills the program
	}
	cw.commit()
	n, err := cw.w.Write(p)
	if err == nil {
		err = http.NewResponseController(cw.w).Flush()
		if errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	return n, err
}

// runState collects what the stdlib handler logged for one request. Its messages are the only report of
// why it failed; the ones below are warnings after which it carries on, every other one ends the request.
type runState struct {
	mu   sync.Mutex
	msgs []string
}

var (
	nonFatal = []string{"cgi: bogus header line", "cgi: invalid header name"}
	copyFail = "cgi: copy error"
)

func (s *runState) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) < 16 {
		s.msgs = append(s.msgs, strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// result reports whether a fatal message was logged, whether the body copy failed, and all messages joined.
func (s *runState) result() (fatal, copyErr bool, cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, m := range s.msgs {
		if strings.HasPrefix(m, copyFail) {
			copyErr = true
			continue
		}
		for _, nf := range nonFatal {
			if strings.HasPrefix(m, nf) {
				continue next
			}
		}
		fatal = true
	}
	return fatal, copyErr, strings.Join(s.msgs, "; ")
}

// lineLogger turns the program's stderr into log lines, cutting lines longer than 4 KiB.
type lineLogger struct {
	mu  sync.Mutex
	buf []byte
	log func(string)
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= 4096 {
				l.log(string(l.buf))
				l.buf = l.buf[:0]
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.log(strings.TrimRight(string(l.buf), "\r"))
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.log(string(l.buf))
		l.buf = nil
	}
}
