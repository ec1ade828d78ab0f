//go:build !linux

package idlepark

import (
	"errors"
	"net"
	"time"
)

// Supported says whether this build can park connections: only Linux (epoll) can; elsewhere a Listener
// passes connections through and never parks.
const Supported = false

type parker struct{}

func newParker(*Listener) (*parker, error) { return nil, errors.ErrUnsupported }

func (*parker) count() int { return 0 }

func (*parker) park(c net.Conn, _ time.Time) { c.Close() }

func (*parker) close() {}
