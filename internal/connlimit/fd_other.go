//go:build !unix

package connlimit

// FileLimit reports no limit where the platform has no RLIMIT_NOFILE.
func FileLimit() (uint64, bool) { return 0, false }
