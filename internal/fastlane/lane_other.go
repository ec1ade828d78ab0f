//go:build !linux

package fastlane

import "net"

// Supported says whether this build has the lane: only Linux does; elsewhere New passes every connection
// through to net/http.
const Supported = false

// Listener passes every connection through.
type Listener struct{ net.Listener }

// New wraps ln without a lane.
func New(ln net.Listener, _ Options) *Listener { return &Listener{ln} }

// Served is always 0 here.
func (l *Listener) Served() uint64 { return 0 }

// HandedOff is always 0 here.
func (l *Listener) HandedOff() uint64 { return 0 }

// Expressed is always 0 here.
func (l *Listener) Expressed() uint64 { return 0 }

// Looped is always 0 here.
func (l *Listener) Looped() uint64 { return 0 }

// OnLoops is always 0 here.
func (l *Listener) OnLoops() int64 { return 0 }
