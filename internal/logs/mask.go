// Package logs carries a job's output from the executor to the store and from the store to
// readers. A Writer cuts a job's output into whole lines, masks secret values and hands chunks
// to the Appender, the one goroutine that commits log chunks to the store in batches; Stream
// reads a run's log back in pages, and with follow waits for new chunks until the run ends.
package logs

import (
	"bytes"
	"slices"
	"strings"
)

// maskText replaces a secret value in a log.
const maskText = "***"

// Mask returns a copy of data with every occurrence of a non-empty secret replaced by "***".
// Longer secrets win over shorter ones, and overlapping or adjacent occurrences are replaced as
// one, so no byte of any occurrence is left. For a secret of several lines, each of its
// non-empty lines (trimmed of surrounding white space) is also masked on its own, since tools
// often print such values (keys, certificates) line by line.
func Mask(data []byte, secrets []string) []byte {
	return maskAppend(nil, data, patterns(secrets))
}

// patterns turns secret values into the byte strings to mask: deduplicated, longest first.
func patterns(secrets []string) [][]byte {
	seen := make(map[string]bool)
	var out [][]byte
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, []byte(s))
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(strings.TrimSpace(line))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b []byte) int { return len(b) - len(a) })
	return out
}

// span is a half-open byte range [from, to) to mask.
type span struct{ from, to int }

// maskAppend appends data to dst with every occurrence of pats masked.
func maskAppend(dst, data []byte, pats [][]byte) []byte {
	var spans []span
	for _, p := range pats {
		for at := 0; at < len(data); {
			i := bytes.Index(data[at:], p)
			if i < 0 {
				break
			}
			s := span{at + i, at + i + len(p)}
			// Occurrences of one pattern come in order: merge overlapping ones at once.
			if n := len(spans); n > 0 && spans[n-1].to >= s.from && spans[n-1].from <= s.from {
				spans[n-1].to = max(spans[n-1].to, s.to)
			} else {
				spans = append(spans, s)
			}
			at += i + 1 // a pattern may overlap itself ("aa" in "aaa")
		}
	}
	if len(spans) == 0 {
		return append(dst, data...)
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	pos := 0
	for i := 0; i < len(spans); {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from <= to; i++ {
			to = max(to, spans[i].to)
		}
		dst = append(dst, data[pos:from]...)
		dst = append(dst, maskText...)
		pos = to
	}
	return append(dst, data[pos:]...)
}

// heldBack returns how many bytes at the end of data must wait for more output before they
// can be masked: the longest end of data that is the beginning of a pattern (at most limit).
func heldBack(data []byte, pats [][]byte, limit int) int {
	longest := 0
	for _, p := range pats {
		longest = max(longest, len(p)-1)
	}
	for k := min(longest, len(data), limit); k > 0; k-- {
		tail := data[len(data)-k:]
		for _, p := range pats {
			if len(p) > k && bytes.HasPrefix(p, tail) {
				return k
			}
		}
	}
	return 0
}
