package migration

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/reqinfo"
)

// TestTheLedgerKeepsItsKeysWhenTheCallersBytesChange: the fast lane records with strings that are views
// of a connection's buffer, which the next request overwrites; the ledger's rows keep their method and
// path (a method kept as given turned one GET row into "PUT" and "GET /a" as later requests reused the
// buffer).
func TestTheLedgerKeepsItsKeysWhenTheCallersBytesChange(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	r.AddRoute(RouteMeta{Pattern: "*", Key: "app a"})
	s := reqinfo.Snapshot{Route: "*", App: "a", Tried: []string{"a"}}
	method, path := make([]byte, 16), make([]byte, 16)
	view := func(buf []byte, v string) string {
		n := copy(buf, v)
		return unsafe.String(&buf[0], n)
	}
	for _, req := range [][2]string{{"GET", "/a"}, {"DELETE", "/a"}, {"GET", "/a"}, {"PUT", "/b"}, {"OPTIONS", "/a"}, {"BREW", "/a"}} {
		r.Record(view(method, req[0]), view(path, req[1]), s, 200, time.Millisecond, true)
	}
	copy(method, "XXXXXXXX") // the next request's bytes
	copy(path, "XXXXXXXX")
	got := map[string]uint64{}
	for _, row := range r.Report().Ledger {
		got[row.Method+" "+row.Path] += row.Total
	}
	want := map[string]uint64{"GET /a": 2, "DELETE /a": 1, "PUT /b": 1, "OPTIONS /a": 1, "OTHER /a": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ledger rows %v, want %v", got, want)
	}
}
