package units

import (
	"strings"
	"time"
)

// ParseBool reads a switch the way every option of the gateway does: "true", "yes", "on", "1" or
// "false", "no", "off", "0", in any letter case; ok is false for anything else.
func ParseBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, true
	case "0", "false", "no", "off":
		return false, true
	}
	return false, false
}

// ParseDuration reads a duration the way every option of the gateway does: a Go duration ("10s",
// "1m30s") that is not negative; "0" is zero. Whether zero is allowed, and what it means ("no limit" for
// timeouts), is the option's to say; ok is false for anything else.
func ParseDuration(v string) (d time.Duration, ok bool) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}
