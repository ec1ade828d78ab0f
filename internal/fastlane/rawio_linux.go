//go:build linux

package fastlane

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's system calls on its non-blocking sockets never wait, so they are made raw: without telling
// the scheduler a call may block (entersyscall and exitsyscall cost about as much as a small read).

// errnoErr returns err as the error unix's wrappers return (nil for 0).
func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawRead reads from fd into p.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// rawWrite writes p to fd.
func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// rawPeek looks at fd's next byte without taking it and without waiting: 1 when there is one, 0 at the
// end of the stream (the peer closed), an error (EAGAIN: nothing to read) otherwise.
func rawPeek(fd int) (int, error) {
	var one [1]byte
	return rawPeekInto(fd, one[:])
}

// rawPeekInto is rawPeek of up to len(p) bytes, into p.
func rawPeekInto(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// rawEpollWait returns the events ready in epfd without waiting.
func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}
