package adapters

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/units"
)

// Options are the per-app settings carried in an APP URL's query (?timeout=5s&strip_prefix=true).
// Every getter marks its key as taken; Unused reports the keys nobody asked for. Each key may appear once.
// Every getter also records the key it was asked for, given or not (Family records "prefix" + "NAME"), so
// that an unknown option can be answered with the options that were valid in its place (Asked).
type Options struct {
	vals  map[string]string
	taken map[string]bool
	asked map[string]bool
}

// ParseOptions reads a raw query string. Repeated keys are an error: with two values there is no way to
// know which one the user meant.
func ParseOptions(rawQuery string) (*Options, error) {
	o := &Options{vals: map[string]string{}, taken: map[string]bool{}, asked: map[string]bool{}}
	if rawQuery == "" {
		return o, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("options %q: %v", rawQuery, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("option %q is given %d times: expected it once", k, len(v))
		}
		o.vals[k] = v[0]
	}
	return o, nil
}

// Has reports whether key was given, without taking it (nor recording it for Asked: callers that refuse
// an option use it).
func (o *Options) Has(key string) bool { _, ok := o.vals[key]; return ok }

// String takes key, returning def when it is absent.
func (o *Options) String(key, def string) string {
	o.ask(key)
	if o.vals == nil {
		return def
	}
	v, ok := o.vals[key]
	if !ok {
		return def
	}
	o.taken[key] = true
	return v
}

// Bool takes key as a boolean (true/false/1/0/yes/no/on/off).
func (o *Options) Bool(key string, def bool) (bool, error) {
	v := o.String(key, "")
	if v == "" {
		return def, nil
	}
	if b, ok := units.ParseBool(v); ok {
		return b, nil
	}
	return def, fmt.Errorf("option %s=%q: expected true or false (also yes/no, on/off, 1/0)", key, v)
}

// Duration takes key as a Go duration ("10s", "1m30s").
func (o *Options) Duration(key string, def time.Duration) (time.Duration, error) {
	v := o.String(key, "")
	if v == "" {
		return def, nil
	}
	d, ok := units.ParseDuration(v)
	if !ok {
		return def, fmt.Errorf("option %s=%q: expected a non-negative duration such as 10s", key, v)
	}
	return d, nil
}

// Size takes key as a byte size ("64KiB", "10MB").
func (o *Options) Size(key string, def int64) (int64, error) {
	v := o.String(key, "")
	if v == "" {
		return def, nil
	}
	n, err := units.ParseSize(v)
	if err != nil {
		return def, fmt.Errorf("option %s: %v", key, err)
	}
	return n, nil
}

// Int takes key as a decimal integer within [min, max].
func (o *Options) Int(key string, def, min, max int) (int, error) {
	v := o.String(key, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return def, fmt.Errorf("option %s=%q: expected an integer from %d to %d", key, v, min, max)
	}
	return n, nil
}

// Known records keys as options of the app being built, for Asked, without taking them: for options a
// caller reads with Has, which records nothing because callers also use it to refuse an option.
func (o *Options) Known(keys ...string) {
	for _, k := range keys {
		o.ask(k)
	}
}

// ask records that key is an option of the app being built, for Asked.
func (o *Options) ask(key string) {
	if o.asked == nil {
		o.asked = map[string]bool{}
	}
	o.asked[key] = true
}

// Family takes every given key that starts with prefix ("param." for param.NAME=VALUE), sorted, and records
// prefix+"NAME" for Asked. The caller reads each value with String.
func (o *Options) Family(prefix string) []string {
	o.ask(prefix + "NAME")
	var out []string
	for k := range o.vals {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Asked lists, sorted, every key a getter was asked for (given or not) and each Family as prefix+"NAME":
// after a build, the options that app understands.
func (o *Options) Asked() []string {
	var families []string // "param." of param.NAME: its members were asked one by one too
	for k := range o.asked {
		if f, ok := strings.CutSuffix(k, "NAME"); ok && strings.HasSuffix(f, ".") {
			families = append(families, f)
		}
	}
	out := make([]string, 0, len(o.asked))
next:
	for k := range o.asked {
		for _, f := range families {
			if strings.HasPrefix(k, f) && k != f+"NAME" {
				continue next
			}
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unused lists the keys no getter took, sorted.
func (o *Options) Unused() []string {
	var out []string
	for k := range o.vals {
		if !o.taken[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Encode prints the options back as a query string, sorted by key (for route tables and logs).
func (o *Options) Encode() string {
	q := url.Values{}
	for k, v := range o.vals {
		q.Set(k, v)
	}
	return q.Encode()
}
