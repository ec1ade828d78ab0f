package delegate

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// marked answers status with its name as the body, and the pass header when mark is set.
func marked(name string, status int, mark bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mark {
			w.Header().Set("X-Switchyard-Pass", "1")
		}
		w.Header().Set("X-From", name)
		w.WriteHeader(status)
		io.WriteString(w, name)
	})
}

func TestPassHeader(t *testing.T) {
	const ph = "X-Switchyard-Pass"
	tests := []struct {
		name       string
		apps       []App
		wantStatus int
		wantBody   string
	}{
		{"a pass status with the header passes on",
			[]App{{Name: "a", Handler: marked("a", 404, true), PassHeader: ph}, {Name: "b", Handler: marked("b", 200, false)}}, 200, "b"},
		{"a pass status without the header (a real page's 404) is final",
			[]App{{Name: "a", Handler: marked("a", 404, false), PassHeader: ph}, {Name: "b", Handler: marked("b", 200, false)}}, 404, "a"},
		{"the header without a pass status is final",
			[]App{{Name: "a", Handler: marked("a", 200, true), PassHeader: ph}, {Name: "b", Handler: marked("b", 200, false)}}, 200, "a"},
		{"an app without the option passes on status alone, the next one's header decides for it",
			[]App{{Name: "a", Handler: marked("a", 404, false)}, {Name: "b", Handler: marked("b", 404, false), PassHeader: ph}, {Name: "c", Handler: marked("c", 200, false)}}, 404, "b"},
		{"the last app's marked pass is final and loses the header",
			[]App{{Name: "a", Handler: marked("a", 404, true), PassHeader: ph}, {Name: "b", Handler: marked("b", 404, true), PassHeader: ph}}, 404, "b"},
		{"a single app's marked answer loses the header",
			[]App{{Name: "only", Handler: marked("only", 404, true), PassHeader: ph}}, 404, "only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, &Cascade{Apps: tt.apps})
			resp, err := http.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || string(b) != tt.wantBody || resp.Header.Get("X-From") != tt.wantBody {
				t.Fatalf("got %d %q (X-From %q), want %d %q", resp.StatusCode, b, resp.Header.Get("X-From"), tt.wantStatus, tt.wantBody)
			}
			if v, ok := resp.Header[ph]; ok {
				t.Fatalf("the client got %s: %q", ph, v)
			}
		})
	}
}

func TestPassHeaderIsRemovedFromStreamedAndFlushedAnswers(t *testing.T) {
	const ph = "X-Switchyard-Pass"
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ph, "1")
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			http.NewResponseController(w).Flush()
		}
	})
	for _, apps := range [][]App{
		{{Name: "s", Handler: stream, PassHeader: ph}},
		{{Name: "s", Handler: stream, PassHeader: ph}, {Name: "b", Handler: marked("b", 200, false)}},
	} {
		srv := serve(t, &Cascade{Apps: apps})
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Count(string(b), "part") != 3 || resp.Header.Get(ph) != "" {
			t.Fatalf("%d apps: got %d %q with %s=%q", len(apps), resp.StatusCode, b, ph, resp.Header.Get(ph))
		}
	}
}
