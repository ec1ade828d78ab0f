package migration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/delegate"
)

// MaxDiffLines bounds the lines Compare returns for one exchange.
const MaxDiffLines = 20

// CompareOptions say what a shadow comparison looks at.
type CompareOptions struct {
	// Headers are the response headers compared; nil means Content-Type only, empty (non-nil) none.
	Headers []string
	// Ignore are JSON field paths left out (see Spec.ShadowIgnore).
	Ignore []string
}

// Compare compares the answer the client got (served) with the shadow app's answer and returns one
// readable line per difference, "" lines never; an empty result is a match. Status first, then each
// configured header, then the body: JSON bodies (by the served Content-Type, or when both parse) field by
// field, skipping ignored paths, lines like `$.user.name: "Ann" != "Anne"`; HTML bodies after collapsing
// whitespace; anything else byte for byte. gzip-encoded bodies are decoded first when complete. When either
// body was truncated, only the kept prefixes are compared, byte for byte.
func Compare(served, shadow delegate.Answer, opts CompareOptions) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < MaxDiffLines {
			out = append(out, fmt.Sprintf(format, args...))
		} else if len(out) == MaxDiffLines {
			out = append(out, "... more differences not shown")
		}
	}
	if shadow.Err != "" {
		add("shadow: no answer (%s)", shadow.Err)
		return out
	}
	if served.Status != shadow.Status {
		add("status: %d != %d", served.Status, shadow.Status)
	}
	headers := opts.Headers
	if headers == nil {
		headers = []string{"Content-Type"}
	}
	for _, h := range headers {
		a, b := normHeader(served.Header.Values(h)), normHeader(shadow.Header.Values(h))
		if a != b {
			add("header %s: %q != %q", http.CanonicalHeaderKey(h), a, b)
		}
	}
	ab, bb := decoded(served), decoded(shadow)
	if served.Truncated || shadow.Truncated {
		n := min(len(ab), len(bb))
		if !bytes.Equal(ab[:n], bb[:n]) {
			add("body: %s (compared the first %d bytes only: answers were truncated)", byteDiff(ab[:n], bb[:n]), n)
		}
		return out
	}
	ignore := compileIgnores(opts.Ignore)
	switch kind := bodyKind(served.Header, ab, bb); kind {
	case "json":
		var av, bv any
		errA, errB := decodeJSON(ab, &av), decodeJSON(bb, &bv)
		switch {
		case errA != nil && errB != nil:
			if !bytes.Equal(ab, bb) {
				add("body: %s", byteDiff(ab, bb))
			}
		case errA != nil || errB != nil:
			add("body: only one answer is valid JSON (served: %v, shadow: %v)", errText(errA), errText(errB))
		default:
			diffJSON("$", nil, av, bv, ignore, add)
		}
	case "html":
		na, nb := normHTML(ab), normHTML(bb)
		if !bytes.Equal(na, nb) {
			add("body (HTML, whitespace normalised): %s", byteDiff(na, nb))
		}
	default:
		if !bytes.Equal(ab, bb) {
			add("body: %s", byteDiff(ab, bb))
		}
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func normHeader(vs []string) string {
	return strings.Join(vs, ", ")
}

// decoded returns the body, gunzipped when it is gzip-encoded and complete (bounded by 8 times its size
// plus 1 MiB, so a compression bomb cannot balloon).
func decoded(a delegate.Answer) []byte {
	if a.Truncated || !strings.EqualFold(strings.TrimSpace(a.Header.Get("Content-Encoding")), "gzip") {
		return a.Body
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.Body))
	if err != nil {
		return a.Body
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(len(a.Body))*8+1<<20))
	if err != nil {
		return a.Body
	}
	return out
}

func bodyKind(h http.Header, a, b []byte) string {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return "json"
	case mt == "text/html" || mt == "application/xhtml+xml":
		return "html"
	case mt == "" && json.Valid(a) && json.Valid(b) && len(bytes.TrimSpace(a)) > 0:
		return "json"
	}
	return "bytes"
}

func decodeJSON(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// diffJSON walks a and b in step. path is the printable path, segs its segments for ignore matching
// (object keys, and "[]" for any array index).
func diffJSON(path string, segs []string, a, b any, ignore []fieldPath, add func(string, ...any)) {
	if ignored(segs, ignore) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			add("%s: %s != %s", path, short(a), short(b))
			return
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, dup := av[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, s := childPath(path, k), append(segs[:len(segs):len(segs)], k)
			if ignored(s, ignore) {
				continue
			}
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case !inB:
				add("%s: %s != (missing)", p, short(x))
			case !inA:
				add("%s: (missing) != %s", p, short(y))
			default:
				diffJSON(p, s, x, y, ignore, add)
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			add("%s: %s != %s", path, short(a), short(b))
			return
		}
		if len(av) != len(bv) {
			add("%s: %d items != %d items", path, len(av), len(bv))
		}
		for i := 0; i < min(len(av), len(bv)); i++ {
			diffJSON(path+"["+strconv.Itoa(i)+"]", append(segs[:len(segs):len(segs)], "[]"), av[i], bv[i], ignore, add)
		}
	default:
		if !jsonEqual(a, b) {
			add("%s: %s != %s", path, short(a), short(b))
		}
	}
}

func jsonEqual(a, b any) bool {
	if an, ok := a.(json.Number); ok {
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		if an == bn {
			return true
		}
		x, e1 := an.Float64()
		y, e2 := bn.Float64()
		return e1 == nil && e2 == nil && x == y
	}
	switch a.(type) {
	case map[string]any, []any:
		return false
	}
	return a == b
}

func childPath(path, key string) string {
	if isIdent(key) {
		return path + "." + key
	}
	q, _ := json.Marshal(key)
	return path + "[" + string(q) + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == '-' && i > 0 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// short renders a JSON value for a diff line, at most 80 characters.
func short(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

// fieldPath is a compiled ignore pattern: segments where "*" matches any key and "[]" any index; anywhere
// means the pattern had no "$" and matches its last segments at any depth.
type fieldPath struct {
	segs     []string
	anywhere bool
}

// parseFieldPath reads "$.a.b", "$.items[*].id", "$['odd key']", "$.a.*" or a bare "key" / "a.b".
func parseFieldPath(p string) (fieldPath, error) {
	var fp fieldPath
	s := strings.TrimSpace(p)
	if s == "" {
		return fp, fmt.Errorf("empty field path")
	}
	if strings.HasPrefix(s, "$") {
		s = s[1:]
	} else {
		fp.anywhere = true
		s = "." + s
	}
	for s != "" {
		switch s[0] {
		case '.':
			s = s[1:]
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return fp, fmt.Errorf("field path %q: empty key", p)
			}
			fp.segs = append(fp.segs, s[:end])
			s = s[end:]
		case '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return fp, fmt.Errorf("field path %q: unclosed [", p)
			}
			in := s[1:end]
			switch {
			case in == "*":
				fp.segs = append(fp.segs, "[]")
			case len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0]:
				fp.segs = append(fp.segs, in[1:len(in)-1])
			default:
				if _, err := strconv.Atoi(in); err != nil {
					return fp, fmt.Errorf("field path %q: expected [*], ['key'] or an index, not [%s]", p, in)
				}
				fp.segs = append(fp.segs, "[]") // indexes are not told apart: an ignored field is ignored in every item
			}
			s = s[end+1:]
		default:
			return fp, fmt.Errorf("field path %q: expected $.key, $.list[*].key or a bare key such as csrf_token", p)
		}
	}
	if len(fp.segs) == 0 {
		return fp, fmt.Errorf("field path %q ignores the whole body: compare status and headers only by ignoring nothing else", p)
	}
	return fp, nil
}

func compileIgnores(ps []string) []fieldPath {
	var out []fieldPath
	for _, p := range ps {
		if fp, err := parseFieldPath(p); err == nil {
			out = append(out, fp)
		}
	}
	return out
}

func ignored(segs []string, ignore []fieldPath) bool {
	for _, fp := range ignore {
		if fp.anywhere {
			if len(segs) >= len(fp.segs) && segsMatch(segs[len(segs)-len(fp.segs):], fp.segs) {
				return true
			}
		} else if len(segs) == len(fp.segs) && segsMatch(segs, fp.segs) {
			return true
		}
	}
	return false
}

func segsMatch(have, pat []string) bool {
	for i := range pat {
		if pat[i] != "*" && pat[i] != have[i] {
			return false
		}
	}
	return true
}

// normHTML collapses every whitespace run to one space, drops whitespace between tags and trims the ends.
func normHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	space := false
	for _, c := range b {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
			space = true
			continue
		}
		if space && len(out) > 0 && !(c == '<' && out[len(out)-1] == '>') {
			out = append(out, ' ')
		}
		space = false
		out = append(out, c)
	}
	return out
}

// byteDiff describes where two byte strings first differ, with a little context from each.
func byteDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(i-20, 0)
	snip := func(x []byte) string {
		end := min(i+40, len(x))
		if from >= end {
			return `""`
		}
		return strconv.Quote(string(x[from:end]))
	}
	return fmt.Sprintf("%d bytes != %d bytes, first difference at byte %d: %s != %s", len(a), len(b), i, snip(a), snip(b))
}
