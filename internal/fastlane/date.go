package fastlane

import (
	"net/http"
	"sync/atomic"
	"time"
)

// dateStamp is the Date field's value for one second.
type dateStamp struct {
	sec int64
	b   [len(http.TimeFormat)]byte
}

// lastDate is the Date value of the second formatted last: every answer of that second writes the same
// bytes, and formatting them took about as many instructions as the rest of the answer's head.
var lastDate atomic.Pointer[dateStamp]

// appendDate appends now as net/http writes the Date field (http.TimeFormat, UTC).
func appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return append(b, d.b[:]...)
	}
	d := &dateStamp{sec: sec}
	now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
	lastDate.Store(d)
	return append(b, d.b[:]...)
}
