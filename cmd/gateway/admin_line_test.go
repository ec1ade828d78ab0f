package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestTheAdminLineListsWhatTheAdminListenerServes checks the "admin listening" line against the admin
// listener: every endpoint it lists answers (405 for a POST-only one), the migration report is among them,
// and /api/processes only when the gateway runs apps.
func TestTheAdminLineListsWhatTheAdminListenerServes(t *testing.T) {
	tests := []struct {
		name      string
		env       []string
		processes bool
	}{
		{"the demo, no run apps", nil, false},
		{"a run app", []string{
			"GATEWAY_RUN=web: /usr/bin/python3 -m http.server --bind 127.0.0.1 {port}",
			"GATEWAY_PRIMARY=http://{addr}?run=web",
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.processes {
				if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
					t.Skip("no /usr/bin/python3 to run as an app")
				}
			}
			p := startGateway(t, tt.env...)
			var line string
			for _, l := range p.seen {
				if strings.Contains(l, "admin listening") {
					line = l
				}
			}
			_, list, ok := strings.Cut(line, `endpoints="`)
			if !ok {
				t.Fatalf("no endpoints in %q", line)
			}
			list, _, _ = strings.Cut(list, `"`)
			endpoints := strings.Fields(list)
			for _, want := range []string{"/readyz", "/api/migration", "/migration"} {
				if !strings.Contains(" "+list+" ", " "+want+" ") {
					t.Errorf("the admin line lists %q, without %s", list, want)
				}
			}
			if got := strings.Contains(list, "/api/processes"); got != tt.processes {
				t.Errorf("the admin line lists %q: /api/processes listed %v, want %v", list, got, tt.processes)
			}
			for _, e := range endpoints {
				resp, err := http.Get("http://" + p.admin + e)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound {
					t.Errorf("GET %s: 404, though the admin line lists it", e)
				}
			}
		})
	}
}
