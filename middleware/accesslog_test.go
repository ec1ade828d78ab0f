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
