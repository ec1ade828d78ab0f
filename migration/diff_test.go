package migration

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/delegate"
)

func answer(status int, ctype, body string) delegate.Answer {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return delegate.Answer{Status: status, Header: h, Body: []byte(body)}
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestCompare(t *testing.T) {
	const js = "application/json"
	zipped := answer(200, js, "")
	zipped.Body = gz(`{"a":1}`)
	zipped.Header.Set("Content-Encoding", "gzip")
	for _, tc := range []struct {
		name           string
		served, shadow delegate.Answer
		opts           CompareOptions
		want           []string
	}{
		{"equal JSON in another key order and spacing matches", answer(200, js, `{"a":1,"b":[1,2]}`), answer(200, js, `{ "b": [1, 2], "a": 1.0 }`), CompareOptions{}, nil},
		{"a differing field is named by its path", answer(200, js, `{"user":{"name":"Ann","id":7}}`), answer(200, js, `{"user":{"name":"Anne","id":7}}`), CompareOptions{},
			[]string{`$.user.name: "Ann" != "Anne"`}},
		{"ignored fields are left out, with wildcards and bare keys", answer(200, js, `{"ts":1,"items":[{"id":1,"v":"x"},{"id":2,"v":"y"}],"meta":{"csrf_token":"a"}}`),
			answer(200, js, `{"ts":2,"items":[{"id":9,"v":"x"},{"id":8,"v":"z"}],"meta":{"csrf_token":"b"}}`),
			CompareOptions{Ignore: []string{"$.ts", "$.items[*].id", "csrf_token"}}, []string{`$.items[1].v: "y" != "z"`}},
		{"missing and extra fields and list lengths are reported", answer(200, js, `{"a":1,"l":[1,2,3]}`), answer(200, js, `{"b":1,"l":[1,2]}`), CompareOptions{},
			[]string{`$.a: 1 != (missing)`, `$.b: (missing) != 1`, `$.l: 3 items != 2 items`}},
		{"status and the configured headers are compared", answer(200, js, `{}`), answer(404, "application/problem+json", `{}`), CompareOptions{},
			[]string{"status: 200 != 404", `header Content-Type: "application/json" != "application/problem+json"`}},
		{"Django's and Express's JSON content types are the same media type", answer(200, js, `{}`), answer(200, "application/json; charset=utf-8", `{}`), CompareOptions{}, nil},
		{"type, subtype and charset compare case-insensitively", answer(200, "Text/HTML; Charset=UTF-8", "x"), answer(200, "text/html; charset=utf-8", "x"), CompareOptions{}, nil},
		{"utf8 is UTF-8 and the default of a +json type", answer(200, "application/problem+json; charset=utf8", `{}`), answer(200, "application/problem+json", `{}`), CompareOptions{}, nil},
		{"a charset other than the default is a difference", answer(200, "text/plain; charset=iso-8859-1", "x"), answer(200, "text/plain", "x"), CompareOptions{},
			[]string{`header Content-Type: "text/plain; charset=iso-8859-1" != "text/plain"`}},
		{"a charset on a type without a default is compared", answer(200, "application/xml; charset=utf-8", "x"), answer(200, "application/xml", "x"), CompareOptions{},
			[]string{`header Content-Type: "application/xml; charset=utf-8" != "application/xml"`}},
		{"other parameters are compared", answer(200, "text/plain; format=flowed", "x"), answer(200, "text/plain; format=fixed", "x"), CompareOptions{},
			[]string{`header Content-Type: "text/plain; format=flowed" != "text/plain; format=fixed"`}},
		{"a different subtype is a difference", answer(200, js, `{}`), answer(200, "text/json", `{}`), CompareOptions{},
			[]string{`header Content-Type: "application/json" != "text/json"`}},
		{"other headers are compared as written", answer(200, js, `{}`), answer(200, js, `{}`), CompareOptions{Headers: []string{"content-type", "X-Kind"}}, nil},
		{"no headers are compared when the list is empty", answer(200, "text/plain", "x"), answer(200, "text/plain; charset=utf-8", "x"), CompareOptions{Headers: []string{}}, nil},
		{"HTML is compared after normalising whitespace", answer(200, "text/html", "<p>\n  Hello   world</p>\n <b>x</b>"), answer(200, "text/html", "<p> Hello world</p><b>x</b>"), CompareOptions{}, nil},
		{"a real HTML difference is shown with context", answer(200, "text/html", "<p>Hello</p>"), answer(200, "text/html", "<p>Help</p>"), CompareOptions{},
			[]string{`body (HTML, whitespace normalised): 12 bytes != 11 bytes, first difference at byte 6: "<p>Hello</p>" != "<p>Help</p>"`}},
		{"other bodies are compared byte for byte", answer(200, "text/plain", "abc"), answer(200, "text/plain", "abd"), CompareOptions{},
			[]string{`body: 3 bytes != 3 bytes, first difference at byte 2: "abc" != "abd"`}},
		{"a gzipped body is compared decoded", zipped, answer(200, js, `{"a":1}`), CompareOptions{Headers: []string{}}, nil},
		{"a shadow without an answer is reported as such", answer(200, js, "{}"), delegate.Answer{Err: "timeout"}, CompareOptions{}, []string{"shadow: no answer (timeout)"}},
		{"only one side being JSON is a difference", answer(200, js, `{}`), answer(200, js, `<html>`), CompareOptions{},
			[]string{`body: only one answer is valid JSON (served: ok, shadow: invalid character '<' looking for beginning of value)`}},
		{"odd keys are quoted in paths", answer(200, js, `{"a b":1}`), answer(200, js, `{"a b":2}`), CompareOptions{}, []string{`$["a b"]: 1 != 2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(tc.served, tc.shadow, tc.opts)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Compare (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompareBoundsItsOutput(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("[")
	b.WriteString("[")
	for i := 0; i < 100; i++ {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		a.WriteString("1")
		b.WriteString("2")
	}
	a.WriteString("]")
	b.WriteString("]")
	got := Compare(answer(200, "application/json", a.String()), answer(200, "application/json", b.String()), CompareOptions{})
	if len(got) != MaxDiffLines+1 || !strings.HasPrefix(got[MaxDiffLines], "...") {
		t.Fatalf("got %d lines, last %q", len(got), got[len(got)-1])
	}
}

func FuzzParseFieldPath(f *testing.F) {
	for _, s := range []string{"$.a.b", "$.items[*].id", "$['a b']", "csrf", "$", "$.a[", "$.a[x]", "a.b[3]", "$..a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := parseFieldPath(s)
		if err == nil && len(fp.segs) == 0 {
			t.Fatalf("parseFieldPath(%q) accepted a path with no segments", s)
		}
		ignored([]string{"a", "[]", "b"}, []fieldPath{fp}) // must not panic
	})
}

func FuzzCompareJSON(f *testing.F) {
	f.Add(`{"a":[1,{"b":null}]}`, `{"a":[1,{"b":true}]}`, "$.a[*].b")
	f.Fuzz(func(t *testing.T, a, b, ignore string) {
		got := Compare(answer(200, "application/json", a), answer(200, "application/json", b), CompareOptions{Ignore: []string{ignore}})
		if len(got) > MaxDiffLines+1 {
			t.Fatalf("%d lines", len(got))
		}
		if a == b && len(got) != 0 {
			t.Fatalf("identical bodies differ: %v", got)
		}
	})
}

func TestDiffNamesTheCauseOfEachDifference(t *testing.T) {
	served := answer(200, "application/json", `{"price":10,"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"ts":1}`)
	served.Header.Set("Location", "/a")
	shadow := answer(201, "application/json; charset=utf-8", `{"price":12,"items":[{"sku":"a","qty":1},{"sku":"b","qty":3}],"ts":2}`)
	shadow.Header.Set("Location", "/b")
	diffs, more := Diff(served, shadow, CompareOptions{Headers: []string{"Content-Type", "Location"}, Ignore: []string{"ts"}})
	var causes []string
	for _, d := range diffs {
		causes = append(causes, d.Cause())
	}
	want := []string{"status", "header Location", "body $.items[*].qty", "body $.price"}
	if d := cmp.Diff(want, causes); d != "" || more {
		t.Fatalf("causes (-want +got):\n%s (more=%v)", d, more)
	}
	if d, _ := Diff(answer(200, "", ""), delegate.Answer{Err: "refused"}, CompareOptions{}); len(d) != 1 || d[0].Cause() != "no answer" {
		t.Fatalf("no answer: %+v", d)
	}
	if d, _ := Diff(answer(200, "text/plain", "a"), answer(200, "text/plain", "b"), CompareOptions{}); len(d) != 1 || d[0].Cause() != "body" {
		t.Fatalf("plain body: %+v", d)
	}
}

func TestPartsSayWhatIsCompared(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts CompareOptions
		want string
	}{
		{"by default status, Content-Type and the body", CompareOptions{}, "status|header Content-Type (as a media type"},
		{"an empty header list compares no header", CompareOptions{Headers: []string{}}, "status|body ("},
		{"ignored fields are named", CompareOptions{Headers: []string{"location"}, Ignore: []string{"$.ts"}}, "status|header Location|body (JSON field by field, HTML whitespace-normalised, else byte for byte; first 1 MiB), ignoring $.ts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.opts.Parts(), "|"); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("parts = %q; want it to start with %q", got, tc.want)
			}
		})
	}
}
