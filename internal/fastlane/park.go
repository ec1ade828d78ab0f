//go:build linux

package fastlane

import (
	"errors"
	"net"
	"time"
)

// parked is readHead's verdict for a connection given to the parker during its idle wait.
const parked Verdict = -2

// parking is the lane's Parker and its delay; after 0 never parks.
type parking struct {
	p     Parker
	after time.Duration
}

func parkingOf(p Parker) parking {
	if p == nil {
		return parking{}
	}
	return parking{p: p, after: p.ParkAfter()}
}

// idleWait starts the wait for the first byte of a connection's next request, idleEnd being its idle
// deadline (zero: none). When the connection may be parked (a Parker, nothing pipelined, and the park
// moment before idleEnd), it reads under the park deadline instead of idleEnd, as internal/idlepark's
// Conn does for net/http's idle read, so a busy connection pays no deadline update more: bytes that come
// first stay in the buffer (and the deadline goes back to idleEnd when fewer than fill's four came), and
// done is false. When the park deadline passes first, the connection goes to the parker and the verdict
// is parked, or errRead when the lane's Close took it meanwhile or it ended. Otherwise it sets idleEnd and
// leaves the wait to fill.
func (c *conn) idleWait(idleEnd time.Time) (v Verdict, done bool) {
	pk := c.l.park
	if pk.after <= 0 || c.buf != nil { // bytes held (pipelined) are never parked
		c.rwc.SetReadDeadline(idleEnd)
		return 0, false
	}
	parkAt := time.Now().Add(pk.after)
	if !idleEnd.IsZero() && !parkAt.Before(idleEnd) {
		c.rwc.SetReadDeadline(idleEnd)
		return 0, false
	}
	c.rwc.SetReadDeadline(parkAt)
	// The wait reads into the connection's small array (a small request arrives whole in that one read),
	// or, for a connection whose requests do not fit there, a pooled buffer (given back when it parks).
	c.takeBuf(nil)
	m, err := c.rwc.Read(c.buf)
	c.n = m
	if m > 0 || err == nil {
		if m < 4 {
			c.rwc.SetReadDeadline(idleEnd) // the rest of the four bytes is awaited as an idle connection's
		}
		return 0, false
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return errRead, true // EOF, a reset, or the lane's Close
	}
	// Parked from here on: Close no longer finds the connection idle in the lane; the parker closes it
	// when the listener under the lane closes (which the lane's Close does first).
	if c.l.closing.Load() || !c.state.CompareAndSwap(stateIdle, stateClosed) {
		return errRead, true
	}
	if c.cancel != nil {
		c.cancel() // the connection's context ends with its serving, as net/http's does
	}
	c.rwc.SetReadDeadline(time.Time{}) // a delivered connection starts without the past park deadline
	if c.l.toLoop(c.rwc, c.remoteAddr, idleEnd) {
		// The event loops hold idle connections as the parker would, and serve their next express
		// requests themselves: a connection that left a loop comes back to one here.
		return parked, true
	}
	pk.p.Park(c.rwc, idleEnd)
	return parked, true
}

// readNoter is internal/idlepark's Conn as a connection handed to net/http may wrap it: the parker learns
// net/http's read length from net/http's first Read and keeps a connection whose idle Read is shorter
// (net/http holds bytes of a next request) from parking; when that first Read is answered from the bytes
// the lane read, the Conn is told with NoteRead.
type readNoter interface{ NoteRead(n int) }
