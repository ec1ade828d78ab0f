package units

import (
	"testing"
	"time"
)

func TestParseBoolAndDuration(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "YES": true, "On": true, "1": true, "false": false, "no": false, "OFF": false, "0": false} {
		if b, ok := ParseBool(v); !ok || b != want {
			t.Errorf("ParseBool(%q) = %v, %v", v, b, ok)
		}
	}
	for _, v := range []string{"", "t", "F", "2", "enabled"} {
		if _, ok := ParseBool(v); ok {
			t.Errorf("ParseBool(%q) accepted", v)
		}
	}
	for v, want := range map[string]time.Duration{"0": 0, "10s": 10 * time.Second, "1m30s": 90 * time.Second} {
		if d, ok := ParseDuration(v); !ok || d != want {
			t.Errorf("ParseDuration(%q) = %v, %v", v, d, ok)
		}
	}
	for _, v := range []string{"", "-1s", "10", "soon"} {
		if _, ok := ParseDuration(v); ok {
			t.Errorf("ParseDuration(%q) accepted", v)
		}
	}
}
