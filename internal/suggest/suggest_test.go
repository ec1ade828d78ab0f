package suggest

import "testing"

func TestClosest(t *testing.T) {
	opts := []string{"dial_timeout", "health_path", "name", "read_timeout", "strip_prefix", "timeout", "param.NAME"}
	tests := []struct {
		name, word, want string
	}{
		{"a dropped letter is found", "strip_prefx", "strip_prefix"},
		{"a swapped pair is found", "timoeut", "timeout"},
		{"a hyphen for an underscore is found", "health-path", "health_path"},
		{"letter case is ignored", "Strip_Prefix", "strip_prefix"},
		{"the start of the only longer name is found", "strip", "strip_prefix"},
		{"a word far from every name gets nothing", "colour", ""},
		{"a short word is not stretched to a long name", "x", ""},
		{"an empty word gets nothing", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Closest(tt.word, opts); got != tt.want {
				t.Errorf("Closest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}
