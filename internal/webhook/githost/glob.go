package githost

import (
	"path"
	"strings"
)

// Glob reports whether name matches pattern, both '/'-separated. Within one segment '*'
// matches any run of characters, '?' one character and '[...]' one of a class ('[!...]' or
// '[^...]' negates, '\' escapes); a segment that is exactly '**' matches any number of whole
// segments, zero included. So "release/*" matches "release/1.0" but not "release/1/2",
// "src/**" matches "src/a/b.go" (and "src"), and "**/*.go" matches "main.go". A malformed
// pattern matches nothing. Matching is case-sensitive and takes time proportional to the
// product of the segment counts, whatever the pattern.
func Glob(pattern, name string) bool {
	ps := strings.Split(pattern, "/")
	ns := strings.Split(name, "/")
	// ok[i][j]: ps[i:] matches ns[j:]; filled from the end.
	ok := make([][]bool, len(ps)+1)
	for i := range ok {
		ok[i] = make([]bool, len(ns)+1)
	}
	ok[len(ps)][len(ns)] = true
	for i := len(ps) - 1; i >= 0; i-- {
		for j := len(ns); j >= 0; j-- {
			if ps[i] == "**" {
				// zero segments, or one more segment and stay on "**"
				ok[i][j] = ok[i+1][j] || (j < len(ns) && ok[i][j+1])
				continue
			}
			ok[i][j] = j < len(ns) && ok[i+1][j+1] && segmentMatch(ps[i], ns[j])
		}
	}
	return ok[0][0]
}

// segmentMatch matches one segment with path.Match, reading '[!' as '[^'.
func segmentMatch(pattern, name string) bool {
	if strings.Contains(pattern, "[!") {
		pattern = strings.ReplaceAll(pattern, "[!", "[^")
	}
	m, err := path.Match(pattern, name)
	return err == nil && m
}

// globAny returns whether name matches any of patterns.
func globAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Glob(p, name) {
			return true
		}
	}
	return false
}
