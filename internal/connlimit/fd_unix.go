//go:build unix

package connlimit

import "syscall"

// FileLimit returns the process's soft limit on open file descriptors (RLIMIT_NOFILE), and false when it
// cannot be read. Go raises the soft limit to the hard one at start, so this is what the gateway can use.
func FileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
