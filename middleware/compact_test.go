package middleware

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Spec
		err  string
	}{
		{"the empty string is the empty list", "  ", nil, ""},
		{"bare names", "gzip, security_headers", []Spec{{Name: "gzip"}, {Name: "security_headers"}}, ""},
		{"a parameter", "ratelimit(rate=100/1m)", []Spec{{Name: "ratelimit", Params: map[string]string{"rate": "100/1m"}}}, ""},
		{"a comma not followed by KEY= stays in the value",
			"cors(origins=https://a.example,https://b.example, credentials=true),gzip",
			[]Spec{{Name: "cors", Params: map[string]string{"origins": "https://a.example,https://b.example", "credentials": "true"}}, {Name: "gzip"}}, ""},
		{"semicolons separate parameters", "x(a=1;b=2)", []Spec{{Name: "x", Params: map[string]string{"a": "1", "b": "2"}}}, ""},
		{"balanced parentheses stay in a raw value", `rewrite(regexp=^/u/(\d+)$,to=/users/$1)`,
			[]Spec{{Name: "rewrite", Params: map[string]string{"regexp": `^/u/(\d+)$`, "to": "/users/$1"}}}, ""},
		{"a quoted value holds anything", `headers(response.set.X-A="a,b=c;)\"\\")`,
			[]Spec{{Name: "headers", Params: map[string]string{"response.set.X-A": `a,b=c;)"\`}}}, ""},
		{"empty parentheses", "gzip()", []Spec{{Name: "gzip"}}, ""},
		{"a missing parenthesis is an error", "gzip(min_size=1", nil, "missing ')'"},
		{"a repeated key is an error", "x(a=1,a=2)", nil, "given twice"},
		{"a parameter without = is an error", "x(a)", nil, "expected KEY=VALUE"},
		{"garbage between items is an error", "gzip cors", nil, "expected ','"},
		{"an empty item is an error", "gzip,,cors", nil, "expected a middleware name"},
		{"a bad escape is an error", `x(a="\n")`, nil, "escapes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Fatalf("-want +got:\n%s", d)
			}
			again, err := ParseList(FormatList(got))
			if err != nil || !cmp.Equal(got, again) {
				t.Fatalf("FormatList %q does not read back: %v %v", FormatList(got), again, err)
			}
		})
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"gzip,security_headers,ratelimit(rate=100/1m)", `headers(response.set.X-A="a,b")`,
		`rewrite(regexp=^/u/(\d+)$,to=/users/$1)`, "cors(origins=https://a,https://b;max_age=1h)", "x(a=(,b=)", `x(a="\\")`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		specs, err := ParseList(s)
		if err != nil {
			return
		}
		out := FormatList(specs)
		again, err := ParseList(out)
		if err != nil {
			t.Fatalf("%q parsed, but its formatted form %q does not: %v", s, out, err)
		}
		if len(specs) == 0 && len(again) == 0 {
			return
		}
		norm := func(l []Spec) []Spec {
			for i := range l {
				if len(l[i].Params) == 0 {
					l[i].Params = nil
				}
			}
			return l
		}
		if d := cmp.Diff(norm(specs), norm(again)); d != "" {
			t.Fatalf("%q -> %q changes meaning:\n%s", s, out, d)
		}
	})
}
