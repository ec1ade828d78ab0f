//go:build unix

package transportguard

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sysReader reads a socket through its syscall.RawConn, so that the read system call and the state settle
// looks at change under the connection's lock together.
type sysReader struct{ rc syscall.RawConn }

func newSysReader(c net.Conn) *sysReader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &sysReader{rc: rc}
}

// read is net.Conn.Read: RawConn.Read waits for readability and obeys the read deadline and Close.
func (s *sysReader) read(c *conn, p []byte) (int, error) {
	var n int
	var serr error
	err := s.rc.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for {
			n, serr = syscall.Read(int(fd), p)
			if serr != syscall.EINTR {
				break
			}
		}
		if serr == syscall.EAGAIN || serr == syscall.EWOULDBLOCK {
			return false
		}
		if n < 0 {
			n = 0
		}
		c.consumedLocked(p[:n], serr)
		return true
	})
	switch {
	case err != nil:
		c.mu.Lock()
		c.consumedLocked(nil, err)
		c.mu.Unlock()
		return 0, s.opError(c, err)
	case serr != nil:
		return 0, s.opError(c, os.NewSyscallError("read", serr))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *sysReader) opError(c *conn, err error) error {
	return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
