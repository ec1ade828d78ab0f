package adapters

import (
	"net/http"
	"strings"
	"testing"
)

// optionRegistry has one kind that reads timeout, root and the param.NAME family, as real adapters do.
func optionRegistry() *Registry {
	r := NewRegistry(nil)
	r.MustRegister(Kind{Schemes: []string{"fastcgi"}, MountAware: true, Summary: "fastcgi",
		Factory: func(t Target) (http.Handler, error) {
			if _, err := t.Options.Duration("timeout", 0); err != nil {
				return nil, err
			}
			t.Options.String("root", "")
			for _, k := range t.Options.Family("param.") {
				t.Options.String(k, "")
			}
			return http.NotFoundHandler(), nil
		}})
	return r
}

func TestAnUnknownOptionNamesWhatWasMeantAndWhatIsValid(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string
		notWant   string
	}{
		{name: "a misspelt option gets the one it resembles", raw: "fastcgi://a:1?timout=5s",
			want: []string{`unknown option "timout" for fastcgi apps; did you mean timeout?`, "(valid here: name, param.NAME, root, script_name, timeout)"}},
		{name: "a misspelt family gets the family", raw: "fastcgi://a:1?parm.APP_ENV=prod",
			want: []string{`unknown option "parm.APP_ENV"`, "did you mean param.NAME?"}},
		{name: "an option like no other gets the list only", raw: "fastcgi://a:1?colour=red",
			want: []string{`unknown option "colour" for fastcgi apps (valid here: `}, notWant: "did you mean"},
		{name: "the members of a family that were given are not listed one by one", raw: "fastcgi://a:1?param.A=1&colour=red",
			want: []string{"param.NAME"}, notWant: "param.A,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := optionRegistry()
			target, _, err := r.Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Build(target)
			if err == nil {
				t.Fatal("built; want an unknown-option error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error has %q:\n%v", tt.notWant, err)
			}
		})
	}
}
