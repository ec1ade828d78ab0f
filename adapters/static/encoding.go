package static

import (
	"strconv"
	"strings"
)

// acceptEncoding is a parsed Accept-Encoding header (RFC 9110 section 12.5.3).
type acceptEncoding struct {
	q        map[string]float64 // explicit codings, lowercase, x-gzip folded into gzip
	star     float64            // the weight of "*", or -1 when absent
	explicit bool               // the header was present and non-empty
}

// parseAcceptEncoding reads the header values. Malformed members (a bad q, an empty coding) are ignored
// rather than failing the request: an ignored member can only make fewer encodings acceptable. A coding named
// twice keeps its highest weight.
func parseAcceptEncoding(values []string) acceptEncoding {
	ae := acceptEncoding{q: map[string]float64{}, star: -1}
	for _, v := range values {
		for member := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(member, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding == "" || !isToken(coding) {
				continue
			}
			ae.explicit = true
			q, ok := parseQ(params)
			if !ok {
				continue
			}
			if coding == "x-gzip" {
				coding = "gzip"
			}
			if coding == "*" {
				ae.star = max(ae.star, q)
				continue
			}
			if old, seen := ae.q[coding]; !seen || q > old {
				ae.q[coding] = q
			}
		}
	}
	return ae
}

// weight returns the weight the client gives coding (lowercase): its own entry, else the "*" entry, else 0.
// A weight of 0 means "not acceptable".
func (ae acceptEncoding) weight(coding string) float64 {
	if q, ok := ae.q[coding]; ok {
		return q
	}
	if ae.star >= 0 {
		return ae.star
	}
	return 0
}

// parseQ finds the q parameter among ";"-separated params. Absent means 1. A value that is not a valid qvalue
// (0 to 1 with at most three decimals) makes the whole member invalid.
func parseQ(params string) (float64, bool) {
	q := 1.0
	if strings.TrimSpace(params) == "" {
		return q, true
	}
	for p := range strings.SplitSeq(params, ";") {
		name, val, found := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		if !found {
			return 0, false
		}
		val = strings.TrimSpace(val)
		if !validQValue(val) {
			return 0, false
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return 0, false
		}
		q = f
	}
	return q, true
}

// validQValue checks the RFC grammar: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")].
func validQValue(s string) bool {
	if s == "" {
		return false
	}
	int0, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		return false
	}
	switch int0 {
	case "0":
		for i := 0; i < len(frac); i++ {
			if frac[i] < '0' || frac[i] > '9' {
				return false
			}
		}
		return true
	case "1":
		for i := 0; i < len(frac); i++ {
			if frac[i] != '0' {
				return false
			}
		}
		return true
	}
	return false
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// isHashedName reports whether a file's base name carries a content hash, so the file can be cached forever:
// after its first dot- or dash-separated segment, a segment of 8 to 64 lowercase hex digits containing at
// least one digit and one letter (app.3f9a2c1b.js, main-3f9a2c1b8d.css, Django's base.5af66c1b1797.css).
// Requiring both a digit and a letter keeps dates (app.20240101.js) and hex-looking words (app.deadbeef.js)
// out;
// the cost is that a hash made only of digits or only of letters is not recognised, which merely caches less.
func isHashedName(base string) bool {
	first := true
	for seg := range strings.FieldsFuncSeq(base, func(r rune) bool { return r == '.' || r == '-' }) {
		if first { // the name itself, never the hash
			first = false
			continue
		}
		if len(seg) < 8 || len(seg) > 64 {
			continue
		}
		digit, letter, ok := false, false, true
		for i := 0; i < len(seg); i++ {
			switch c := seg[i]; {
			case '0' <= c && c <= '9':
				digit = true
			case 'a' <= c && c <= 'f':
				letter = true
			default:
				ok = false
			}
		}
		if ok && digit && letter {
			return true
		}
	}
	return false
}
