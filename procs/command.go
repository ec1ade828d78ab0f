package procs

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

var execLookPath = exec.LookPath

// SplitCommand splits a command line into argv the way a shell splits words, without a shell: blanks
// separate words, single quotes keep everything literally, double quotes and backslashes work as in sh.
// A character only a shell gives meaning to ($ ` | & ; < > ( ) and a leading ~ or #) outside quotes is an
// error that says to write the shell out ([sh, -c, "..."]): running the line without one would pass
// those characters to the program, silently doing something else than the user meant.
func SplitCommand(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				} else if line[i] == '$' || line[i] == '`' {
					return nil, fmt.Errorf("%q expands %c inside double quotes, which needs a shell: write the command as [sh, -c, %q], or quote it with single quotes", line, line[i], line)
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote in %q", line)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		case strings.IndexByte("$`|&;<>()", c) >= 0 || (!inWord && (c == '~' || c == '#')):
			return nil, fmt.Errorf("%q uses %c, which needs a shell: write the command as [sh, -c, %q] (the gateway runs commands without one)", line, c, line)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// ProcfileEntry is one line of a Procfile: "web: gunicorn mysite.wsgi".
type ProcfileEntry struct {
	Name    string
	Line    int
	Command string // as written
}

var procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+):\s*(.*)$`)

// ParseProcfile reads a Procfile (the Heroku and foreman convention): one "NAME: command" per line,
// blank lines and lines starting with # ignored. Errors name the file (path) and line.
func ParseProcfile(path string, data []byte) ([]ProcfileEntry, error) {
	var out []ProcfileEntry
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := procfileLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s:%d: expected NAME: command, such as web: gunicorn mysite.wsgi", path, n)
		}
		if strings.TrimSpace(m[2]) == "" {
			return nil, fmt.Errorf("%s:%d: %s has no command", path, n, m[1])
		}
		if first, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("%s:%d: %s is given twice (first on line %d)", path, n, m[1], first)
		}
		seen[m[1]] = n
		out = append(out, ProcfileEntry{Name: m[1], Line: n, Command: strings.TrimSpace(m[2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// ProcfileArgv is the argv a Procfile command runs as. A Procfile line is a shell command by the
// convention's definition (foreman and Heroku run it with sh, so "$PORT" works), so it runs under
// /bin/sh -c; a line that is one simple command gets "exec" in front, so the app itself (not a shell
// waiting for it) is the process the gateway signals and watches.
func ProcfileArgv(command string) []string {
	if strings.ContainsAny(command, ";&|\n`") || strings.Contains(command, "$(") {
		return []string{"/bin/sh", "-c", command}
	}
	return []string{"/bin/sh", "-c", "exec " + command}
}
