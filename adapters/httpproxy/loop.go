package httpproxy

import (
	"net"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/internal/fastlane"
)

// loopUpstream is the h1 client as the fast lane's loop uses it (fastlane.LoopUpstream).
type loopUpstream struct{ *h1.Transport }

func (u loopUpstream) Dial() (net.Conn, error) { return u.DialApp() }
func (loopUpstream) HeadEnd(b []byte) int      { return h1.HeadEnd(b) }
func (loopUpstream) HeaderTimeout() error      { return h1.HeaderTimeout() }
func (loopUpstream) Stale408() error           { return h1.Stale408() }

func (loopUpstream) ParseAnswer(raw []byte, head bool) (fastlane.AnswerHead, bool) {
	return h1.ParseAnswer(raw, head)
}

func (loopUpstream) IOError(c net.Conn, op string, errno error, noBytes bool) error {
	return h1.IOError(c, op, errno, noBytes)
}
