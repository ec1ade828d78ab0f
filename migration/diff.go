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

// Difference is one way a shadow answer differed from the served one.
type Difference struct {
	// Part is what differed: "status", "header" (Field names it), "body" (Field is the JSON path, "" for a
	// body compared as a whole) or "answer" (the shadow app gave none).
	Part  string `json:"part"`
	Field string `json:"field,omitempty"`
	// Text is the readable line, such as `$.user.name: "Ann" != "Anne"`.
	Text string `json:"text"`
}

// Cause names the difference for counting, without values: "status", "header Content-Type",
// "body $.items[*].price" (array indexes folded, so one cause counts every item), "body", "no answer".
func (d Difference) Cause() string {
	switch {
	case d.Part == "answer":
		return "no answer"
	case d.Field == "":
		return d.Part
	case d.Part == "body":
		return "body " + foldIndexes(d.Field)
	}
	return d.Part + " " + d.Field
}

// foldIndexes turns every "[7]" of a JSON path into "[*]".
func foldIndexes(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '[')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		j := strings.IndexByte(p[i:], ']')
		if j < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		if _, err := strconv.Atoi(p[i+1 : i+j]); err == nil {
			b.WriteString("[*]")
		} else {
			b.WriteString(p[i : i+j+1])
		}
		p = p[i+j+1:]
	}
}

// Compare compares the answer the client got (served) with the shadow app's answer and returns one
// readable line per difference, "" lines never; an empty result is a match (see Diff).
func Compare(served, shadow delegate.Answer, opts CompareOptions) []string {
	diffs, more := Diff(served, shadow, opts)
	var out []string
	for _, d := range diffs {
		out = append(out, d.Text)
	}
	if more {
		out = append(out, "... more differences not shown")
	}
	return out
}

// Diff compares the answer the client got (served) with the shadow app's answer; no difference is a
// match. Status first, then each configured header (Content-Type as a media type: type and subtype
// case-insensitive, a charset equal to the type's default counting as absent, other parameters compared;
// other headers as written), then the body: JSON bodies (by the served Content-Type, or when both parse)
// field by field, skipping ignored paths; HTML bodies after collapsing whitespace; anything else byte for
// byte. gzip-encoded bodies are decoded first when complete. When either body was truncated, only the
// kept prefixes are compared, byte for byte. At most MaxDiffLines differences are returned; more reports
// that there were others.
func Diff(served, shadow delegate.Answer, opts CompareOptions) (diffs []Difference, more bool) {
	add := func(part, field, format string, args ...any) {
		if len(diffs) < MaxDiffLines {
			diffs = append(diffs, Difference{Part: part, Field: field, Text: fmt.Sprintf(format, args...)})
		} else {
			more = true
		}
	}
	if shadow.Err != "" {
		add("answer", "", "shadow: no answer (%s)", shadow.Err)
		return diffs, more
	}
	if served.Status != shadow.Status {
		add("status", "", "status: %d != %d", served.Status, shadow.Status)
	}
	for _, h := range opts.headers() {
		h = http.CanonicalHeaderKey(h)
		norm := normHeader
		if h == "Content-Type" {
			norm = normContentType
		}
		if a, b := norm(served.Header.Values(h)), norm(shadow.Header.Values(h)); a != b {
			add("header", h, "header %s: %q != %q", h, strings.Join(served.Header.Values(h), ", "), strings.Join(shadow.Header.Values(h), ", "))
		}
	}
	ab, bb := decoded(served), decoded(shadow)
	if served.Truncated || shadow.Truncated {
		n := min(len(ab), len(bb))
		if !bytes.Equal(ab[:n], bb[:n]) {
			add("body", "", "body: %s (compared the first %d bytes only: answers were truncated)", byteDiff(ab[:n], bb[:n]), n)
		}
		return diffs, more
	}
	ignore := compileIgnores(opts.Ignore)
	switch kind := bodyKind(served.Header, ab, bb); kind {
	case "json":
		var av, bv any
		errA, errB := decodeJSON(ab, &av), decodeJSON(bb, &bv)
		switch {
		case errA != nil && errB != nil:
			if !bytes.Equal(ab, bb) {
				add("body", "", "body: %s", byteDiff(ab, bb))
			}
		case errA != nil || errB != nil:
			add("body", "", "body: only one answer is valid JSON (served: %v, shadow: %v)", errText(errA), errText(errB))
		default:
			diffJSON("$", nil, av, bv, ignore, func(path, format string, args ...any) { add("body", path, format, args...) })
		}
	case "html":
		na, nb := normHTML(ab), normHTML(bb)
		if !bytes.Equal(na, nb) {
			add("body", "", "body (HTML, whitespace normalised): %s", byteDiff(na, nb))
		}
	default:
		if !bytes.Equal(ab, bb) {
			add("body", "", "body: %s", byteDiff(ab, bb))
		}
	}
	return diffs, more
}

// headers returns the headers compared: nil Headers means Content-Type, empty none.
func (o CompareOptions) headers() []string {
	if o.Headers == nil {
		return []string{"Content-Type"}
	}
	return o.Headers
}

// Parts describes in words what a comparison with o looks at, for the report: a match rate means
// nothing without it.
func (o CompareOptions) Parts() []string {
	parts := []string{"status"}
	for _, h := range o.headers() {
		h = http.CanonicalHeaderKey(h)
		if h == "Content-Type" {
			parts = append(parts, "header Content-Type (as a media type: case and a default charset ignored)")
		} else {
			parts = append(parts, "header "+h)
		}
	}
	body := "body (JSON field by field, HTML whitespace-normalised, else byte for byte; first 1 MiB)"
	if len(o.Ignore) > 0 {
		body += ", ignoring " + strings.Join(o.Ignore, ", ")
	}
	return append(parts, body)
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

// normContentType prints Content-Type values as media types compare: mime.ParseMediaType lowercases the
// type, subtype and parameter names; the charset value is compared case-insensitively (utf8 as utf-8) and
// dropped when it is the type's default, so Django's "application/json" equals Express's
// "application/json; charset=utf-8". A value that does not parse is compared as written.
func normContentType(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		mt, params, err := mime.ParseMediaType(v)
		if err != nil {
			out[i] = strings.TrimSpace(v)
			continue
		}
		if cs, ok := params["charset"]; ok {
			cs = strings.ToLower(strings.TrimSpace(cs))
			if cs == "utf8" {
				cs = "utf-8"
			}
			if cs == defaultCharset(mt) {
				delete(params, "charset")
			} else {
				params["charset"] = cs
			}
		}
		out[i] = mime.FormatMediaType(mt, params)
	}
	return strings.Join(out, ", ")
}

// defaultCharset is the charset a media type has when none is given: UTF-8 for JSON (RFC 8259 allows no
// other) and, as browsers and frameworks treat them today, for text types; "" for the rest.
func defaultCharset(mediaType string) string {
	if mediaType == "application/json" || strings.HasSuffix(mediaType, "+json") || strings.HasPrefix(mediaType, "text/") {
		return "utf-8"
	}
	return ""
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
func diffJSON(path string, segs []string, a, b any, ignore []fieldPath, add func(path, format string, args ...any)) {
	if ignored(segs, ignore) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			add(path, "%s: %s != %s", path, short(a), short(b))
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
				add(p, "%s: %s != (missing)", p, short(x))
			case !inA:
				add(p, "%s: (missing) != %s", p, short(y))
			default:
				diffJSON(p, s, x, y, ignore, add)
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			add(path, "%s: %s != %s", path, short(a), short(b))
			return
		}
		if len(av) != len(bv) {
			add(path, "%s: %d items != %d items", path, len(av), len(bv))
		}
		for i := 0; i < min(len(av), len(bv)); i++ {
			diffJSON(path+"["+strconv.Itoa(i)+"]", append(segs[:len(segs):len(segs)], "[]"), av[i], bv[i], ignore, add)
		}
	default:
		if !jsonEqual(a, b) {
			add(path, "%s: %s != %s", path, short(a), short(b))
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
