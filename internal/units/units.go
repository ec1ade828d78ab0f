// Package units owns the parsing and printing of the human-sized quantities that configuration uses:
// byte sizes such as "64KiB" or "10MB", and the one reading of switches and durations that app options
// and middleware specs share.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var sizeSuffixes = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize reads a byte count such as "512", "64KiB", "10MB" or "1.5GiB". Binary suffixes (KiB, K) are powers
// of 1024, decimal ones (KB) powers of 1000; suffixes are case-insensitive. Negative and overflowing sizes are
// errors, so a limit can never wrap into "unlimited" by accident.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size: expected a byte count such as 512, 64KiB or 10MB")
	}
	mult := int64(1)
	for _, sf := range sizeSuffixes {
		if len(t) > len(sf.suffix) && strings.EqualFold(t[len(t)-len(sf.suffix):], sf.suffix) {
			mult = sf.mult
			t = strings.TrimSpace(t[:len(t)-len(sf.suffix)])
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (n > 0 && n > math.MaxInt64/mult) {
			return 0, fmt.Errorf("size %q out of range: expected a non-negative byte count below 8EiB", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: expected a byte count such as 512, 64KiB or 10MB", s)
	}
	if f < 0 || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q out of range: expected a non-negative byte count below 8EiB", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize prints n with the largest binary suffix that divides it exactly, so values read back unchanged.
func FormatSize(n int64) string {
	for _, sf := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%sf.mult == 0 {
			return strconv.FormatInt(n/sf.mult, 10) + sf.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
