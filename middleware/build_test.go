package middleware

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		specs []Spec
		want  []string
	}{
		{"an unknown middleware is named", []Spec{{Name: "colour"}}, []string{`middleware[0] "colour": unknown middleware (known: `}},
		{"a misspelt middleware gets the one it resembles", []Spec{{Name: "gzp"}}, []string{`middleware[0] "gzp": unknown middleware; did you mean gzip? (known: `}},
		{"a misspelt parameter gets the one it resembles", []Spec{{Name: "gzip", Params: map[string]string{"min_sze": "1KiB"}}}, []string{"middleware[0] gzip: unknown parameter min_sze; did you mean min_size? (known: min_size, gzip, zstd)"}},
		{"an unknown parameter is named with the known ones", []Spec{{Name: "gzip", Params: map[string]string{"colour": "1"}}}, []string{"middleware[0] gzip: unknown parameter colour (known: min_size, gzip, zstd)"}},
		{"a bad value names parameter and expectation", []Spec{{Name: "ratelimit", Params: map[string]string{"rate": "lots"}}}, []string{`middleware[0] ratelimit: parameter rate="lots": expected COUNT/WINDOW`}},
		{"a missing parameter is named", []Spec{{Name: "redirect"}}, []string{"middleware[0] redirect: parameter to is missing"}},
		{"every problem is reported", []Spec{{Name: "timeout", Params: map[string]string{"header": "soon"}}, {Name: "ip_filter", Params: map[string]string{"allow": "10.0.0.300"}}},
			[]string{`middleware[0] timeout: parameter header="soon": expected a positive duration`, `middleware[1] ip_filter: parameter allow="10.0.0.300": expected CIDRs`}},
		{"credentials with any origin are refused", []Spec{{Name: "cors", Params: map[string]string{"origins": "*", "credentials": "true"}}}, []string{"credentials cannot be allowed for origin *"}},
		{"prefix_rewrite needs a prefix", []Spec{{Name: "prefix_rewrite"}}, []string{"middleware[0] prefix_rewrite: parameter prefix=\"\""}},
		{"a header rule needs a header name", []Spec{{Name: "headers", Params: map[string]string{"request.set.Bad Name": "x"}}}, []string{"is not a header name"}},
		{"basic_auth needs bcrypt hashes", []Spec{{Name: "basic_auth", Params: map[string]string{"users": "alice:secret"}}}, []string{"not a bcrypt hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Build(tt.specs, BuildEnv{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestBuildOrder checks that the first spec is the outermost: it sees the request first and the response
// last.
func TestBuildOrder(t *testing.T) {
	specs, err := ParseList(`headers(request.add.X-Trace=outer;response.add.X-Trace=outer),headers(request.add.X-Trace=inner;response.add.X-Trace=inner),basic_auth(users=alice:$2a$04$abcdefghijklmnopqrstuu5Jp8WWPZLGXKKiJ3y6K.oFk7Nbl6W4e)`)
	if err != nil {
		t.Fatal(err)
	}
	specs = specs[:2]
	mw, desc, err := Build(specs, BuildEnv{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"headers(request.add.X-Trace=outer;response.add.X-Trace=outer)", "headers(request.add.X-Trace=inner;response.add.X-Trace=inner)"}
	if d := cmp.Diff(want, desc); d != "" {
		t.Fatalf("description -want +got:\n%s", d)
	}
	url := serve(t, mw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values("X-Trace"), ","))
	}))
	resp, body := do(t, "GET", url, nil, nil)
	if body != "outer,inner" {
		t.Errorf("request order %q", body)
	}
	if got := strings.Join(resp.Header.Values("X-Trace"), ","); got != "inner,outer" {
		t.Errorf("response order %q", got)
	}
	_, desc, err = Build([]Spec{{Name: "basic_auth", Params: map[string]string{"users": "alice:$2a$04$abcdefghijklmnopqrstuu5Jp8WWPZLGXKKiJ3y6K.oFk7Nbl6W4e"}}}, BuildEnv{})
	if err != nil || desc[0] != "basic_auth(users=...)" {
		t.Errorf("secret shown: %v %v", desc, err)
	}
}
