package middleware

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Access-log durations carry their unit in the key and are milliseconds as numbers, in JSON and in text.
func TestAccessLogDurationsAreMillisecondsWithTheUnitInTheKey(t *testing.T) {
	var buf bytes.Buffer
	h := AccessLog(slog.New(slog.NewJSONHandler(&buf, nil)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // a duration to measure, not synchronisation
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if _, ok := line["duration"]; ok {
		t.Errorf("a bare duration key is still logged: %s", buf.String())
	}
	ms, ok := line["duration_ms"].(float64)
	if !ok || ms < 2 || ms > 60_000 {
		t.Errorf("duration_ms = %v (%T), want milliseconds as a number of at least 2", line["duration_ms"], line["duration_ms"])
	}

	buf.Reset()
	AccessLog(slog.New(slog.NewTextHandler(&buf, nil)))(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	if !strings.Contains(buf.String(), " duration_ms=") || strings.Contains(buf.String(), "µs") {
		t.Errorf("text line: %s", buf.String())
	}
}

func TestMillisRoundsToTheMicrosecond(t *testing.T) {
	for d, want := range map[time.Duration]float64{412345 * time.Nanosecond: 0.412, 1500 * time.Millisecond: 1500, 0: 0} {
		if got := millis("d", d).Value.Float64(); got != want {
			t.Errorf("millis(%v) = %v, want %v", d, got, want)
		}
	}
}

// The access line names the protocol of HTTP/2 and HTTP/3 requests; HTTP/1.x lines are unchanged.
func TestAccessLogNamesHTTP2AndHTTP3(t *testing.T) {
	for _, tc := range []struct {
		major int
		proto string
		want  string
	}{{1, "HTTP/1.1", ""}, {2, "HTTP/2.0", "HTTP/2.0"}, {3, "HTTP/3.0", "HTTP/3.0"}} {
		var buf bytes.Buffer
		r := httptest.NewRequest("GET", "/x", nil)
		r.ProtoMajor, r.Proto = tc.major, tc.proto
		AccessLog(slog.New(slog.NewJSONHandler(&buf, nil)))(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), r)
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%v: %s", err, buf.String())
		}
		if got, _ := line["proto"].(string); got != tc.want {
			t.Errorf("%s: proto=%q in the line, want %q", tc.proto, got, tc.want)
		}
	}
}
