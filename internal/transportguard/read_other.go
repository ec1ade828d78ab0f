//go:build !unix

package transportguard

import "net"

// sysReader is unix-only; elsewhere conn reads plainly (see the package doc).
type sysReader struct{}

func newSysReader(net.Conn) *sysReader { return nil }

func (s *sysReader) read(c *conn, p []byte) (int, error) { panic("unreachable") }
