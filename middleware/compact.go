package middleware

import (
	"fmt"
	"sort"
	"strings"
)

// ParseList reads the compact form of a middleware list used by GATEWAY_MIDDLEWARE:
//
//	gzip,security_headers,ratelimit(rate=100/1m),cors(origins=https://a.example,https://b.example;credentials=true)
//
// Items are separated by commas; an item is a name ([A-Za-z0-9_-]) with optional parameters in parentheses,
// KEY=VALUE separated by ',' or ';'. A key is [A-Za-z0-9_.-]. A value is either double-quoted ("a,b", with
// \" and \\ as the only escapes) or raw: a raw value runs until a ';', a ')' that closes the list, or a ','
// followed by the next KEY=; so "origins=https://a,https://b" is one value. Parentheses inside a raw value
// must balance ("regexp=^/u/(\d+)$"); anything else needs quotes. Whitespace around items, keys and raw
// values is ignored. A repeated key is an error. The empty string is the empty list.
func ParseList(s string) ([]Spec, error) {
	p := &compactParser{s: s}
	var out []Spec
	p.space()
	if p.eof() {
		return nil, nil
	}
	for {
		sp, err := p.item()
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
		p.space()
		if p.eof() {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errf("expected ',' between middleware")
		}
		p.i++
		p.space()
	}
}

// FormatList prints specs in the form ParseList reads, parameters sorted by key, values quoted where needed.
func FormatList(specs []Spec) string {
	var b strings.Builder
	for i, s := range specs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.Name)
		if len(s.Params) == 0 {
			continue
		}
		keys := make([]string, 0, len(s.Params))
		for k := range s.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('(')
		for j, k := range keys {
			if j > 0 {
				b.WriteByte(';')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(quoteValue(s.Params[k]))
		}
		b.WriteByte(')')
	}
	return b.String()
}

func quoteValue(v string) string {
	if v != "" && v == strings.TrimSpace(v) && !strings.ContainsAny(v, "\",;()\\=") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

type compactParser struct {
	s string
	i int
}

func (p *compactParser) eof() bool { return p.i >= len(p.s) }

func (p *compactParser) errf(format string, a ...any) error {
	return fmt.Errorf("at byte %d of %q: %s", p.i, p.s, fmt.Sprintf(format, a...))
}

func (p *compactParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func isKeyByte(c byte) bool { return isNameByte(c) || c == '.' }

func (p *compactParser) item() (Spec, error) {
	start := p.i
	for p.i < len(p.s) && isNameByte(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return Spec{}, p.errf("expected a middleware name such as gzip or ratelimit(rate=100/1m)")
	}
	sp := Spec{Name: p.s[start:p.i]}
	p.space()
	if p.eof() || p.s[p.i] != '(' {
		return sp, nil
	}
	p.i++
	sp.Params = map[string]string{}
	for {
		p.space()
		if p.eof() {
			return Spec{}, p.errf("missing ')' after the parameters of %s", sp.Name)
		}
		if p.s[p.i] == ')' {
			p.i++
			if len(sp.Params) == 0 {
				sp.Params = nil
			}
			return sp, nil
		}
		ks := p.i
		for p.i < len(p.s) && isKeyByte(p.s[p.i]) {
			p.i++
		}
		key := p.s[ks:p.i]
		p.space()
		if key == "" || p.eof() || p.s[p.i] != '=' {
			return Spec{}, p.errf("expected KEY=VALUE in the parameters of %s", sp.Name)
		}
		p.i++
		p.space()
		val, err := p.value()
		if err != nil {
			return Spec{}, err
		}
		if _, dup := sp.Params[key]; dup {
			return Spec{}, p.errf("parameter %s of %s given twice", key, sp.Name)
		}
		sp.Params[key] = val
		p.space()
		if p.eof() {
			return Spec{}, p.errf("missing ')' after the parameters of %s", sp.Name)
		}
		switch p.s[p.i] {
		case ')':
		case ',', ';':
			p.i++
		default:
			return Spec{}, p.errf("expected ',', ';' or ')' after parameter %s of %s", key, sp.Name)
		}
	}
}

func (p *compactParser) value() (string, error) {
	if !p.eof() && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for {
			if p.eof() {
				return "", p.errf("unterminated quoted value")
			}
			c := p.s[p.i]
			p.i++
			switch c {
			case '"':
				return b.String(), nil
			case '\\':
				if p.eof() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
					return "", p.errf(`in a quoted value only \" and \\ are escapes`)
				}
				b.WriteByte(p.s[p.i])
				p.i++
			default:
				b.WriteByte(c)
			}
		}
	}
	start := p.i
	depth := 0
	for ; p.i < len(p.s); p.i++ {
		switch p.s[p.i] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return strings.TrimSpace(p.s[start:p.i]), nil
			}
			depth--
		case ';':
			if depth == 0 {
				return strings.TrimSpace(p.s[start:p.i]), nil
			}
		case ',':
			if depth == 0 && p.nextIsKey(p.i+1) {
				return strings.TrimSpace(p.s[start:p.i]), nil
			}
		case '"':
			return "", p.errf("a quote inside a raw value: quote the whole value")
		}
	}
	return "", p.errf("missing ')'")
}

// nextIsKey reports whether s[i:] starts with optional spaces, a key and '='.
func (p *compactParser) nextIsKey(i int) bool {
	for i < len(p.s) && (p.s[i] == ' ' || p.s[i] == '\t') {
		i++
	}
	j := i
	for j < len(p.s) && isKeyByte(p.s[j]) {
		j++
	}
	if j == i {
		return false
	}
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	return j < len(p.s) && p.s[j] == '='
}
