// Package leakcheck reports goroutines a test left running, as goleak does, but gives goroutines that are
// already on their way out the time a loaded machine needs to end them.
//
// goleak retries for under half a second before it calls a goroutine leaked. The goroutines of a
// connection or server a test has just closed end on their own, but on a busy 2-core machine running the
// whole suite under -race they can take longer than that; a goroutine that is really leaked is still
// there after the longer wait, so the check is as strict as goleak's, only not fooled by scheduling.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long Find waits for unexpected goroutines to end before it reports them.
const Patience = 10 * time.Second

// Find returns goleak's error for the goroutines opts do not ignore that are still running after
// Patience, or nil as soon as there are none.
func Find(opts ...goleak.Option) error {
	deadline := time.Now().Add(Patience)
	for {
		err := goleak.Find(opts...) // itself retries for a moment
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // polling: no signal tells that a goroutine ended
	}
}

// VerifyNone fails t when Find reports leaked goroutines.
func VerifyNone(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	if err := Find(opts...); err != nil {
		t.Error(err)
	}
}

// VerifyTestMain runs the tests, then fails the run when they passed but left goroutines running (what
// goleak.VerifyTestMain does, with Find's patience).
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if err := Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines left running after the tests passed: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
