// Package suggest finds the word a user most likely meant when they misspelt a name (an option, a key):
// "did you mean strip_prefix?".
package suggest

import "strings"

// Closest returns the candidate closest to word, or "" when none is close enough to suggest: a candidate
// equal to it but for letter case and '-' for '_', else the only candidate it begins or that begins it
// (at least 3 letters), else the candidate within the smallest edit distance, at most a third of the
// word's length plus one and at most 3. Ties go to the earlier candidate.
func Closest(word string, candidates []string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	w := norm(word)
	if w == "" {
		return ""
	}
	for _, c := range candidates {
		if norm(c) == w {
			return c
		}
	}
	var prefixed []string
	for _, c := range candidates {
		nc := norm(c)
		if len(w) >= 3 && (strings.HasPrefix(nc, w) || strings.HasPrefix(w, nc)) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	best, bestD := "", min(len(w)/3+1, 3)+1
	for _, c := range candidates {
		if d := distance(w, norm(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes (names are ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
