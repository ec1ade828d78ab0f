package adapters

import (
	"strings"
	"testing"
)

func TestAnAppIsNamedByItsAddressOrItsNameOption(t *testing.T) {
	r := testRegistry()
	r.MustRegister(Kind{Schemes: []string{"status", "uwsgi", "uwsgi+unix"}, Factory: testRegistry().kinds["fastcgi"].Factory})
	tests := []struct {
		name, raw, want, wantErr string
	}{
		{name: "an HTTP app is its host and port", raw: "http://127.0.0.1:3000", want: "127.0.0.1:3000"},
		{name: "options never reach the name", raw: "http://127.0.0.1:3000/?stage=canary&canary=10&old=http%3A%2F%2Fold", want: "127.0.0.1:3000"},
		{name: "a base path stays", raw: "http://127.0.0.1:3000/base/?timeout=5s", want: "127.0.0.1:3000/base"},
		{name: "a unix socket is scheme:path", raw: "unix:///run/app.sock?timeout=1s", want: "unix:/run/app.sock"},
		{name: "a uwsgi socket keeps its scheme", raw: "uwsgi+unix:///run/uwsgi.sock", want: "uwsgi+unix:/run/uwsgi.sock"},
		{name: "a TCP scheme other than http keeps its scheme", raw: "uwsgi://127.0.0.1:3031", want: "uwsgi://127.0.0.1:3031"},
		{name: "credentials are left out", raw: "https://user:secret@api.example.com", want: "https://api.example.com"},
		{name: "an opaque URL is itself", raw: "status:403", want: "status:403"},
		{name: "instances are joined", raw: "http://10.0.0.1:8000|http://10.0.0.2:8000?lb=p2c", want: "10.0.0.1:8000|10.0.0.2:8000"},
		{name: "the name option wins", raw: "uwsgi://127.0.0.1:3031?name=shop-django", want: "shop-django"},
		{name: "an empty name is refused", raw: "http://a:1?name=", wantErr: `option name="": expected a label`},
		{name: "a name with a space is refused", raw: "http://a:1?name=my+app", wantErr: `option name="my app"`},
		{name: "a name over 64 bytes is refused", raw: "http://a:1?name=" + strings.Repeat("x", 65), wantErr: "expected a label of 1 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, _, err := r.Parse(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if target.Name != tt.want {
				t.Fatalf("name = %q; want %q", target.Name, tt.want)
			}
		})
	}
}

func TestTheNameOptionIsNotAnUnknownOption(t *testing.T) {
	r := testRegistry()
	target, _, err := r.Parse("fastcgi://127.0.0.1:9000?name=php")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build(target); err != nil {
		t.Fatalf("build: %v", err)
	}
}
