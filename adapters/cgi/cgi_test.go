package cgi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/internal/testpeer"
)

const python = "/usr/bin/python3"

// envScript prints the variables a test looks at, then echoes the body.
const envScript = `#!/bin/sh
printf 'Content-Type: text/plain\r\n'
printf 'X-Script: sh\r\n\r\n'
for v in SCRIPT_NAME PATH_INFO QUERY_STRING REQUEST_METHOD CONTENT_LENGTH CONTENT_TYPE HTTP_PROXY \
	HTTP_X_FORWARDED_FOR HTTP_X_CUSTOM MYVAR PATH HOME LD_LIBRARY_PATH SCRIPT_FILENAME HTTP_HOST SERVER_SOFTWARE; do
	eval "printf '%s=%s\n' $v \"\${$v-<unset>}\""
done
printf 'PWD=%s\n' "$(pwd)"
printf 'BODY='
cat
`

// pyScript is a real Python CGI program: JSON of its environment and the body it read by CONTENT_LENGTH.
const pyScript = `#!` + python + `
import json, os, sys
n = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(n).decode("latin-1") if n else ""
keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_LENGTH", "HTTP_PROXY",
        "GATEWAY_INTERFACE", "REQUEST_URI"]
out = json.dumps({"env": {k: os.environ.get(k) for k in keys}, "body": body, "all": sorted(os.environ)})
sys.stdout.write("Status: 201 Created\r\nContent-Type: application/json\r\n\r\n" + out)
`

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, raw, mount string) (http.Handler, *syncBuf) {
	t.Helper()
	return adaptertest.Build(t, Kind(), raw, mount)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func vars(body string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestShellScript(t *testing.T) {
	testpeer.Need(t, "needs a POSIX shell", "sh")
	dir := t.TempDir()
	prog := writeScript(t, dir, "env.sh", envScript)
	work := t.TempDir()
	h, _ := build(t, "cgi://"+prog+"?env.MYVAR=hello%20world&dir="+work, "/cgi-bin")
	srv := httptest.NewServer(h)
	defer srv.Close()

	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   io.Reader
		chunk  bool
		want   map[string]string
	}{
		{"the mount is SCRIPT_NAME and the rest PATH_INFO", "GET", "/cgi-bin/a/b?x=1&y=%20", nil, nil, false, map[string]string{
			"SCRIPT_NAME": "/cgi-bin", "PATH_INFO": "/a/b", "QUERY_STRING": "x=1&y=%20", "REQUEST_METHOD": "GET",
			"CONTENT_LENGTH": "<unset>", "BODY": ""}},
		{"the mount alone has an empty PATH_INFO", "GET", "/cgi-bin", nil, nil, false, map[string]string{
			"SCRIPT_NAME": "/cgi-bin", "PATH_INFO": ""}},
		{"a POST body reaches stdin with its length", "POST", "/cgi-bin/post", map[string]string{"Content-Type": "text/plain"},
			strings.NewReader("hello body"), false, map[string]string{"CONTENT_LENGTH": "10", "CONTENT_TYPE": "text/plain", "BODY": "hello body"}},
		{"a chunked body is spooled and handed over with its length", "POST", "/cgi-bin/chunked", nil,
			strings.NewReader("chunked body"), true, map[string]string{"CONTENT_LENGTH": "12", "BODY": "chunked body"}},
		{"the Proxy header never becomes HTTP_PROXY (httpoxy)", "GET", "/cgi-bin/", map[string]string{"Proxy": "http://evil.example:8080"},
			nil, false, map[string]string{"HTTP_PROXY": "<unset>"}},
		{"a header with an underscore does not alias a dashed one", "GET", "/cgi-bin/", map[string]string{"X_Forwarded_For": "6.6.6.6"},
			nil, false, map[string]string{"HTTP_X_FORWARDED_FOR": "<unset>"}},
		{"an ordinary header becomes HTTP_*", "GET", "/cgi-bin/", map[string]string{"X-Custom": "v1"},
			nil, false, map[string]string{"HTTP_X_CUSTOM": "v1"}},
		{"the environment holds configured variables and nothing of the gateway's", "GET", "/cgi-bin/", nil, nil, false, map[string]string{
			"MYVAR": "hello world", "PATH": DefaultPath, "HOME": "<unset>", "LD_LIBRARY_PATH": "", "SCRIPT_FILENAME": prog,
			"SERVER_SOFTWARE": "switchyard", "PWD": work}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.chunk && body != nil {
				body = io.MultiReader(body) // hides the length: the client sends it chunked
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunk && req.ContentLength != -1 {
				req.ContentLength = -1
			}
			for k, v := range tc.header {
				req.Header[k] = []string{v}
			}
			resp, out := do(t, req)
			if resp.StatusCode != 200 || resp.Header.Get("X-Script") != "sh" {
				t.Fatalf("status %d, headers %v, body %q", resp.StatusCode, resp.Header, out)
			}
			got := vars(out)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (output %q)", k, got[k], v, out)
				}
			}
		})
	}
}

func TestPythonScript(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		testpeer.Missing(t, python+" not found; apt-get install python3")
	}
	prog := writeScript(t, t.TempDir(), "app.py", pyScript)
	h, _ := build(t, "cgi://"+prog, "/cgi-bin")
	srv := httptest.NewServer(h)
	defer srv.Close()

	big := strings.Repeat("0123456789abcdef", 100_000) // 1.6 MB: past the in-memory spool
	tests := []struct {
		name  string
		path  string
		body  string
		chunk bool
		env   map[string]string
	}{
		{"a path and a query reach the program", "/cgi-bin/items/7?q=a%2Fb", "", false, map[string]string{
			"SCRIPT_NAME": "/cgi-bin", "PATH_INFO": "/items/7", "QUERY_STRING": "q=a%2Fb", "REQUEST_METHOD": "POST",
			"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_URI": "/cgi-bin/items/7?q=a%2Fb"}},
		{"a POST with a length", "/cgi-bin/form", "a=1&b=2", false, map[string]string{"CONTENT_LENGTH": "7"}},
		{"a large chunked POST spooled to a file", "/cgi-bin/upload", big, true, map[string]string{"CONTENT_LENGTH": "1600000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunk {
				body = io.MultiReader(body)
			}
			req, _ := http.NewRequest("POST", srv.URL+tc.path, body)
			req.Header.Set("Proxy", "http://evil.example")
			resp, out := do(t, req)
			if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, headers %v, body %.300q", resp.StatusCode, resp.Header, out)
			}
			var got struct {
				Env  map[string]*string
				Body string
				All  []string
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %.300q", err, out)
			}
			if got.Body != tc.body {
				t.Errorf("body: got %d bytes, want %d", len(got.Body), len(tc.body))
			}
			if got.Env["HTTP_PROXY"] != nil {
				t.Errorf("HTTP_PROXY reached the program: %q", *got.Env["HTTP_PROXY"])
			}
			for k, v := range tc.env {
				if g := got.Env[k]; g == nil || *g != v {
					t.Errorf("%s = %v, want %q", k, g, v)
				}
			}
			for _, name := range got.All {
				if name == "HOME" || name == "USER" || name == "GOPATH" || strings.HasPrefix(name, "GO") {
					t.Errorf("the gateway's variable %s leaked into the program", name)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		script string
		query  string
		status int
		body   string
		log    string
	}{
		{"garbage output is 502", "#!/bin/sh\necho 'this is not a CGI header'\n", "", 502, "", "no headers"},
		{"a program that dies silently is 502", "#!/bin/sh\nexit 3\n", "", 502, "", "no headers"},
		{"a header without Content-Type is 502", "#!/bin/sh\nprintf 'X-Thing: 1\\n\\nbody'\n", "", 502, "", "Content-Type"},
		{"a bogus Status is 502", "#!/bin/sh\nprintf 'Status: abc\\nContent-Type: text/plain\\n\\n'\n", "", 502, "", "bogus status"},
		{"an endless header line is 502", "#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\0' a\n", "", 502, "", "long header"},
		{"a status below 100 is 502, not a panic", "#!/bin/sh\nprintf 'Status: 001\\nContent-Type: text/plain\\n\\nx'\n", "", 502, "", "invalid status 1"},
		{"an interim 1xx status is 502", "#!/bin/sh\nprintf 'Status: 103 Early\\nContent-Type: text/plain\\n\\nx'\n", "", 502, "", "invalid status 103"},
		{"a program's own 500 stays 500", "#!/bin/sh\nprintf 'Status: 500 Boom\\nContent-Type: text/plain\\n\\n'\n", "", 500, "", ""},
		{"a program's own 500 with a body stays 500", "#!/bin/sh\nprintf 'Status: 500 Boom\\nContent-Type: text/plain\\n\\noops'\n", "", 500, "oops", ""},
		{"a program's 404 passes through", "#!/bin/sh\nprintf 'Status: 404 Not Here\\nContent-Type: text/plain\\n\\nmissing'\n", "", 404, "missing", ""},
		{"a Location alone is a 302", "#!/bin/sh\nprintf 'Location: https://example.com/\\n\\n'\n", "", 302, "", ""},
		{"a program too slow to answer is killed and 504", "#!/bin/sh\nsleep 30\n", "?timeout=300ms", 504, "", "no response header within"},
		{"a slow program's children are killed too", "#!/bin/sh\nsleep 30 &\nsleep 30\n", "?timeout=300ms", 504, "", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog := writeScript(t, dir, "s"+string(rune('a'+i))+".sh", tc.script)
			h, logs := build(t, "cgi://"+prog+tc.query, "")
			srv := httptest.NewServer(h)
			defer srv.Close()
			start := time.Now()
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			resp, out := do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q; logs %s", resp.StatusCode, tc.status, out, logs)
			}
			if tc.body != "" && out != tc.body {
				t.Errorf("body %q, want %q", out, tc.body)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("took %v: the program was not killed", el)
			}
			if tc.log != "" && !strings.Contains(logs.String(), tc.log) {
				t.Errorf("logs lack %q:\n%s", tc.log, logs)
			}
			if tc.log != "" && !strings.Contains(logs.String(), "app=") {
				t.Errorf("the failure log does not name the app:\n%s", logs)
			}
		})
	}
}

func TestTimeoutAfterHeaderAborts(t *testing.T) {
	prog := writeScript(t, t.TempDir(), "slow.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nsleep 30\n")
	h, _ := build(t, "cgi://"+prog+"?timeout=300ms", "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a response cut by the timeout looked complete: %q", b)
	}
	if string(b) != "partial" {
		t.Errorf("got %q before the abort, want %q", b, "partial")
	}
}

func TestStreaming(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// The script prints one line, then waits (bounded) for the test to create the gate file, then another.
	prog := writeScript(t, dir, "stream.sh", "#!/bin/sh\nprintf 'Content-Type: text/event-stream\\n\\n'\necho 'data: one'\necho\n"+
		"i=0; while [ ! -e "+gate+" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\necho 'data: two'\necho\n")
	h, _ := build(t, "cgi://"+prog, "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

// TestBodyAfterResponseHeader pins the full-duplex contract: a program may print its header before it reads
// stdin, and the body still reaches it. The client sends the body only once it holds the response header, so
// a server that consumes the unread body when the header goes out (HTTP/1's default) deadlocks here, bounded
// by the context, instead of flaking under load as the shell test did.
func TestBodyAfterResponseHeader(t *testing.T) {
	prog := writeScript(t, t.TempDir(), "echo.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat\n")
	h, _ := build(t, "cgi://"+prog, "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const payload = "sent after the header"
	pr, pw := io.Pipe()
	defer pw.Close()
	// The transport waits for its body writer before reporting an error: unblock it when time is up.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	defer stop()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(payload))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("no response header before the body was sent: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := io.WriteString(pw, payload); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != payload {
		t.Fatalf("the program echoed %q (%v), want %q", got, err, payload)
	}
}

func TestBodyLimits(t *testing.T) {
	prog := writeScript(t, t.TempDir(), "env.sh", envScript)
	h, _ := build(t, "cgi://"+prog+"?max_body=1KiB", "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name   string
		size   int
		chunk  bool
		status int
	}{
		{"a declared body within the limit passes", 1024, false, 200},
		{"a declared body over the limit is 413", 1025, false, 413},
		{"a chunked body within the limit passes", 1024, true, 200},
		{"a chunked body over the limit is 413", 1025, true, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(strings.Repeat("x", tc.size))
			if tc.chunk {
				body = io.MultiReader(body)
			}
			req, _ := http.NewRequest("POST", srv.URL+"/", body)
			resp, _ := do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// TestChunkedBodyFailures covers the failures of spooling a body of unknown length: the program is never
// started, and the client hears whose fault it was.
func TestChunkedBodyFailures(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	prog := writeScript(t, dir, "touch.sh", "#!/bin/sh\ntouch "+marker+"\nprintf 'Content-Type: text/plain\\n\\nran'\n")
	h, _ := build(t, "cgi://"+prog+"?max_body=2MiB", "")
	tests := []struct {
		name   string
		body   io.Reader
		gone   bool // the client went away first
		noTemp bool // the spool's temporary directory is missing
		status int  // 0: no answer at all
	}{
		{name: "a spool that cannot write its temporary file is the gateway's 500, not the client's 400",
			body: strings.NewReader(strings.Repeat("x", 1<<20+1)), noTemp: true, status: 500},
		{name: "a chunked body past the limit and past the memory part is 413",
			body: strings.NewReader(strings.Repeat("x", 2<<20+1)), status: 413},
		{name: "a chunked body the client breaks is 400",
			body: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errors.New("unexpected EOF in chunk"))), status: 400},
		{name: "a client gone while its chunked body is spooled gets no answer",
			body: strings.NewReader("abc"), gone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", tc.body)
			req.ContentLength = -1
			if tc.noTemp {
				t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
			}
			if tc.gone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if tc.status == 0 {
				if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
					t.Fatalf("answered %d %q to a client that is gone", rec.Code, rec.Body)
				}
			} else if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the program ran for a body that never became whole")
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	exe := writeScript(t, dir, "ok.sh", "#!/bin/sh\n")
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, raw, want string }{
		{"a relative path is refused", "cgi:relative.sh", "absolute"},
		{"a host is refused", "cgi://host/x.sh", "absolute"},
		{"a missing program is refused", "cgi://" + dir + "/missing.sh", "missing.sh: no such file or directory: expected an executable file"},
		{"a non-executable file is refused", "cgi://" + noexec, "not an executable"},
		{"a directory is refused", "cgi://" + dir, "not an executable"},
		{"a relative dir is refused", "cgi://" + exe + "?dir=tmp", "absolute"},
		{"a bad variable name is refused", "cgi://" + exe + "?env.A-B=1", "env.NAME"},
		{"an unknown option is refused", "cgi://" + exe + "?tiemout=1s", "unknown option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := adapters.NewRegistry(nil)
			reg.MustRegister(Kind())
			tgt, _, err := reg.Parse(tc.raw)
			if err == nil {
				_, err = reg.Build(tgt)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

type syncBuf = adaptertest.LogBuffer

// TestAProgramThatIgnoresItsBodyLeavesTheConnectionWhole: a program that answers and exits without reading
// its stdin leaves most of a 200 KB body unread (the copy to its stdin stops when the pipe breaks). With
// full duplex on, net/http read that rest itself after the handler returned, which armed its background
// read of the connection again; its read of the next request on the keep-alive connection then panicked
// ("invalid concurrent Body.Read call") and dropped the connection. The adapter now reads the rest (or has
// the connection closed after the answer) before it returns: the server never panics, and the next request
// is answered.
func TestAProgramThatIgnoresItsBodyLeavesTheConnectionWhole(t *testing.T) {
	prog := writeScript(t, t.TempDir(), "ignore.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n")
	h, _ := build(t, "cgi://"+prog, "")
	var logs syncBuf
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(&logs, "", 0)
	srv.Start()
	defer srv.Close()
	client := srv.Client()
	for round := range 3 {
		for _, method := range []string{"POST", "GET"} {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader(strings.Repeat("x", 200_000))
			}
			req, err := http.NewRequest(method, srv.URL+"/", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, method, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("round %d: %s: %d %q (%v)", round, method, resp.StatusCode, b, err)
			}
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the server panicked:\n%s", logs.String())
	}
}
