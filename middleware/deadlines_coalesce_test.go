package middleware

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineRecorder records the write deadlines set on it.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// TestClientDeadlinesWriteDeadlineIsAlwaysIdleAway checks the write deadlines of an answer: at every write
// and at the end, the deadline in force is at least idle away and at most idle plus idle/1024, and writes
// close together share one deadline instead of moving it every time.
func TestClientDeadlinesWriteDeadlineIsAlwaysIdleAway(t *testing.T) {
	const idle = 60 * time.Second // slack: 58.6ms
	var rec *deadlineRecorder
	// check looks at the deadline in force after something that started at before: it must be idle away
	// from that moment at least, and at most idle plus the slack from now.
	check := func(what string, before time.Time) {
		t.Helper()
		now := time.Now()
		if len(rec.set) == 0 {
			t.Fatalf("%s: no write deadline set", what)
		}
		d := rec.set[len(rec.set)-1]
		if d.Before(before.Add(idle)) {
			t.Errorf("%s: deadline %v after it, want at least %v", what, d.Sub(before), idle)
		}
		if d.After(now.Add(idle + idle/1024)) {
			t.Errorf("%s: deadline %v away, want at most %v", what, d.Sub(now), idle+idle/1024)
		}
	}
	h := ClientDeadlines(idle)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			before := time.Now()
			_, _ = w.Write([]byte("chunk"))
			check("write "+string(rune('1'+i)), before)
		}
		time.Sleep(idle / 1024 * 2) // a pause longer than the slack (not a synchronisation): a later deadline is due
		before := time.Now()
		_, _ = w.Write([]byte("late chunk"))
		check("write after a pause", before)
	}))
	rec = &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	before := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	check("end of the answer", before)
	// 2: one for the three writes, one after the pause (one more if the machine stalled longer than the
	// slack between two of them); not one per write.
	if n := len(rec.set); n < 2 || n > 3 {
		t.Errorf("%d write deadlines set for 3 writes together, a pause, a write and the end: want 2", n)
	}
}
