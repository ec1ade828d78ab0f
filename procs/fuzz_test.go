package procs

import (
	"strings"
	"testing"
)

// FuzzSplitCommand: the splitter never panics, and the words it returns come back unchanged when each is
// written in single quotes (the shell's literal quoting) and the line is split again.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"gunicorn --bind unix:{socket} app.wsgi", `node "my app.js" 'a b' c\ d`, `echo "say \"hi\""`, "a && b", "'unterminated", `x "$y"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := SplitCommand(line)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := SplitCommand(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("%q split into %q, whose quoted form fails: %v", line, words, err)
		}
		if strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("%q split into %q, quoted and split again into %q", line, words, again)
		}
	})
}

// FuzzParseProcfile: the parser never panics; every entry it returns has a valid name, a command and a
// line number inside the file, and no name twice.
func FuzzParseProcfile(f *testing.F) {
	for _, s := range []string{"web: gunicorn app.wsgi\nworker: node w.js\n", "# c\n\nweb:\n", "web: a\nweb: b\n", "bad line\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		entries, err := ParseProcfile("Procfile", []byte(data))
		if err != nil {
			return
		}
		lines := strings.Count(data, "\n") + 1
		seen := map[string]bool{}
		for _, e := range entries {
			if !procfileLine.MatchString(e.Name+": x") || e.Command == "" || e.Line < 1 || e.Line > lines || seen[e.Name] {
				t.Fatalf("bad entry %+v from %q", e, data)
			}
			seen[e.Name] = true
		}
	})
}
