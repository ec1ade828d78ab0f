package admin

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/autotls"
	"github.com/switchyard/switchyard/gateway"
)

// fakeCerts is a fixed certificate report.
type fakeCerts struct {
	statuses []autotls.Status
	settled  bool
}

func (f fakeCerts) Statuses() []autotls.Status { return f.statuses }
func (f fakeCerts) Settled() bool              { return f.settled }

func TestReadinessReportsEveryCertificateAndWaitsForTheFirstOrders(t *testing.T) {
	until := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	renew := until.Add(-30 * 24 * time.Hour)
	valid := autotls.Status{Name: "shop.example.com", Source: "acme", State: "valid", ValidUntil: &until, NextRenewal: &renew}
	failed := autotls.Status{Name: "nowhere.example.com", Source: "acme", State: "failed", LastError: "urn:ietf:params:acme:error:dns - NXDOMAIN", Failures: 2}
	g := &gateway.Gateway{}
	for _, tc := range []struct {
		name   string
		certs  fakeCerts
		status int
		want   []string
	}{
		{"a name still being ordered keeps the gateway unready", fakeCerts{[]autotls.Status{valid, {Name: "new.example.com", Source: "acme", State: "obtaining"}}, false}, 503,
			[]string{"certificates: the first certificate of a name is still being ordered", "certificate new.example.com (acme): obtaining"}},
		{"a failed name is reported but the others are served", fakeCerts{[]autotls.Status{valid, failed}, true}, 200,
			[]string{"ready\n", "certificate shop.example.com (acme): valid, valid until 2027-03-01T12:00:00Z, renewal from 2027-01-30T12:00:00Z",
				"certificate nowhere.example.com (acme): failed, last error (2 failures, retried with backoff): urn:ietf:params:acme:error:dns - NXDOMAIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HandlerWith(func() *gateway.Gateway { return g }, nil, Options{Certificates: tc.certs})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d:\n%s", rec.Code, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("/readyz lacks %q:\n%s", w, body)
				}
			}
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/certificates", nil))
			var got []autotls.Status
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 || len(got) != len(tc.certs.statuses) || got[0].Name != "shop.example.com" || !got[0].ValidUntil.Equal(until) {
				t.Errorf("/api/certificates: %d %s (%v)", rec.Code, rec.Body.String(), err)
			}
		})
	}
}
