package adapters

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testRegistry() *Registry {
	r := NewRegistry(nil)
	ok := func(Target) (http.Handler, error) { return http.NotFoundHandler(), nil }
	r.MustRegister(Kind{Schemes: []string{"http", "https", "unix"}, Factory: func(t Target) (http.Handler, error) {
		t.Options.String("lb", "")
		return ok(t)
	}, MultiInstance: true, Summary: "http"})
	r.MustRegister(Kind{Schemes: []string{"fastcgi"}, Factory: ok, Summary: "fastcgi"})
	return r
}

func TestParseInstances(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string // instances; nil means an error is expected
		wantErr   string
		opts      string
	}{
		{name: "a single URL is one instance", raw: "http://a:1/base?lb=p2c", want: []string{"http://a:1/base"}, opts: "lb=p2c"},
		{name: "instances are split on bars and the options after the last apply to the set",
			raw: "http://10.0.0.1:8000|http://10.0.0.2:8000?lb=least_requests", want: []string{"http://10.0.0.1:8000", "http://10.0.0.2:8000"}, opts: "lb=least_requests"},
		{name: "http, https and unix instances mix within one kind", raw: "http://a:1|https://b|unix:///run/a.sock",
			want: []string{"http://a:1", "https://b", "unix:///run/a.sock"}},
		{name: "a bar inside the options is plain text", raw: "http://a|http://b?lb=x|y", want: []string{"http://a", "http://b"}, opts: "lb=x%7Cy"},
		{name: "an instance after the options is refused", raw: "http://a:1?timeout=5s|http://b:2", wantErr: `instance "http://b:2" comes after the options ("?timeout=5s"): the options go after the last instance`},
		{name: "spaces around the bars are no part of the URLs", raw: "http://a:1 | http://b:2 |http://c:3?lb=p2c", want: []string{"http://a:1", "http://b:2", "http://c:3"}, opts: "lb=p2c"},
		{name: "a second instance of an IP address and port without a scheme is told to take one", raw: "http://127.0.0.1:5001|127.0.0.1:5002", wantErr: `for an HTTP app write "http://127.0.0.1:5002"`},
		{name: "an empty instance is refused", raw: "http://a||http://b", wantErr: "empty instance"},
		{name: "a trailing bar is refused", raw: "http://a|", wantErr: "empty instance"},
		{name: "a leading bar is refused", raw: "|http://a", wantErr: "empty instance"},
		{name: "instances of two kinds are refused", raw: "http://a|fastcgi://b", wantErr: "all instances must be of one kind"},
		{name: "a repeated instance is refused", raw: "http://a:1|http://a:1", wantErr: "listed twice"},
		{name: "an instance repeated in another spelling is refused", raw: "http://a:13001|http://A:013001/", wantErr: `instances "http://a:13001" and "http://A:013001/" are one address`},
		{name: "a default port written out is the same address", raw: "http://a|http://a:80", wantErr: "are one address"},
		{name: "an unknown scheme after a bar is named", raw: "http://a|gopher://b", wantErr: `unknown scheme "gopher"`},
		{name: "a host name and port without a scheme are told to take one", raw: "localhost:8000", wantErr: `app "localhost:8000" has no scheme: an app is a URL; for an HTTP app write "http://localhost:8000"`},
		{name: "an IPv4 address and port without a scheme are told to take one", raw: "127.0.0.1:3000", wantErr: `for an HTTP app write "http://127.0.0.1:3000"`},
		{name: "an IPv6 address and port with a path without a scheme are told to take one", raw: "[::1]:3000/app", wantErr: `for an HTTP app write "http://[::1]:3000/app"`},
		{name: "a second instance without a scheme is told to take one", raw: "http://a:1|b:2", wantErr: `for an HTTP app write "http://b:2"`},
		{name: "a registered scheme with a number is no bare address (status:403)", raw: "fastcgi:9000", want: []string{"fastcgi:9000"}},
		// What url.Parse lets through but no app can be reached at.
		{name: "a port past 65535 is refused", raw: "http://127.0.0.1:5001|http://127.0.0.1:99999", wantErr: `instance "http://127.0.0.1:99999": port 99999: expected a port from 1 to 65535`},
		{name: "port 0 is refused", raw: "http://127.0.0.1:0", wantErr: `app "http://127.0.0.1:0": port 0: expected a port from 1 to 65535`},
		{name: "a port without a host is refused", raw: "http://:5001|http://b:1", wantErr: `port 5001 but no host`},
		{name: "an empty port is refused", raw: "http://127.0.0.1:", wantErr: `has an empty port`},
		{name: "a fragment is refused", raw: "http://a:1#top", wantErr: `a fragment (#top) means nothing to an app`},
		{name: "an IPv6 address with a port is an address", raw: "http://[::1]:8080", want: []string{"http://[::1]:8080"}},
		{name: "an IPv6 address without brackets is told to take them", raw: "http://::1:13002", wantErr: `host "::1:13002": an IPv6 address goes in brackets, such as http://[::1]:8000`},
		{name: "a unix socket's path is a file's", raw: "http://a:1|unix:///", wantErr: `socket path "/": expected the path of a unix socket`},
	}
	r := testRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, _, err := r.Parse(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range tg.Instances {
				got = append(got, u.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("instances (-want +got):\n%s", diff)
			}
			if tg.URL != tg.Instances[0] {
				t.Errorf("URL is not the first instance")
			}
			if tt.opts != "" && tg.Options.Encode() != tt.opts {
				t.Errorf("options = %q, want %q", tg.Options.Encode(), tt.opts)
			}
		})
	}
}

func TestBuildRefusesSeveralInstancesForSingleInstanceKinds(t *testing.T) {
	r := testRegistry()
	tg, _, err := r.Parse("fastcgi://a:9000|fastcgi://b:9000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Build(tg)
	if err == nil || !strings.Contains(err.Error(), "take one instance") || !strings.Contains(err.Error(), "http, https, unix") {
		t.Fatalf("Build error = %v, want a refusal naming the kinds that balance", err)
	}
	tg, _, err = r.Parse("http://a:1|unix:///s.sock?lb=p2c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build(tg); err != nil {
		t.Fatalf("Build of a multi-instance kind: %v", err)
	}
}

// barBlanks are blanks beside a bar between instances: no part of either URL.
var barBlanks = regexp.MustCompile(`[ \t]*\|[ \t]*`)

func FuzzParseInstances(f *testing.F) {
	for _, s := range []string{"http://a|http://b?lb=p2c", "unix:///x|y", "http://a|b:c|", "file:///a|b?x=|y:z", "|", "a:|b:?|c:"} {
		f.Add(s)
	}
	r := testRegistry()
	f.Fuzz(func(t *testing.T, raw string) {
		raw = strings.TrimSpace(raw)
		parts, err := SplitInstances(raw)
		if err != nil {
			return
		}
		// Joined, the instances give the input back, but for blanks beside the bars before the options.
		head, query, hasQuery := strings.Cut(raw, "?")
		want := barBlanks.ReplaceAllString(head, "|")
		if hasQuery {
			want += "?" + query
		}
		if strings.Join(parts, "|") != want {
			t.Fatalf("SplitInstances(%q) = %q: joining does not give the input back (without blanks beside bars: %q)", raw, parts, want)
		}
		for _, p := range parts[:len(parts)-1] {
			if strings.Contains(p, "?") {
				t.Fatalf("SplitInstances(%q): instance %q before the last carries a query", raw, p)
			}
		}
		tg, _, err := r.Parse(raw)
		if err != nil {
			return
		}
		if len(tg.Instances) != len(parts) || tg.URL != tg.Instances[0] {
			t.Fatalf("Parse(%q): %d instances from %d parts", raw, len(tg.Instances), len(parts))
		}
		for _, u := range tg.Instances {
			if u.RawQuery != "" {
				t.Fatalf("Parse(%q): instance %q kept a query", raw, u)
			}
		}
	})
}
