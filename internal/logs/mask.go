// Package logs carries a job's output from the executor to the store and from the store to
// readers. A Writer cuts a job's output into whole lines, masks secret values and hands chunks
// to the Appender, the one goroutine that commits log chunks to the store in batches; Stream
// reads a run's log back in pages, and with follow waits for new chunks until the run ends.
package logs

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
)

// maskText replaces a secret value in a log.
const maskText = "***"

// Mask returns a copy of data with every occurrence of a non-empty secret replaced by "***".
// Longer secrets win over shorter ones, and overlapping or adjacent occurrences are replaced as
// one, so no byte of any occurrence is left. For a secret of several lines, each of its
// non-empty lines (trimmed of surrounding white space) is also masked on its own, since tools
// often print such values (keys, certificates) line by line. The common encodings of each of
// these values are masked too, as GitHub Actions does (see encodings).
func Mask(data []byte, secrets []string) []byte {
	return maskAppend(nil, data, patterns(secrets))
}

// minEncoded is the shortest encoded form masked: shorter ones (from secrets of a few bytes)
// would mask unrelated text as often as the secret. The plain value is masked at any length.
const minEncoded = 6

// patterns turns secret values into the byte strings to mask: each value, the lines of a
// multi-line one, and their encodings; deduplicated, longest first.
func patterns(secrets []string) [][]byte {
	seen := make(map[string]bool)
	var out [][]byte
	add := func(s string, min int) {
		if len(s) >= min && !seen[s] {
			seen[s] = true
			out = append(out, []byte(s))
		}
	}
	addValue := func(v string) {
		add(v, 1)
		for _, e := range encodings(v) {
			add(e, minEncoded)
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		addValue(s)
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if line = strings.TrimSpace(line); line != "" {
					addValue(line)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b []byte) int { return len(b) - len(a) })
	return out
}

// encodings returns the forms in which a value commonly reaches a log besides its own:
//
//   - base64, standard and URL alphabets, padded and not: the value encoded alone; and, for
//     a value inside a longer base64 stream (a basic auth header, a config file encoded
//     whole), the characters that encode only the value's bits at each of the three offsets it
//     can start at within a 3-byte group (the characters shared with the neighbours' bits
//     differ from stream to stream and are left, leaking at most 4 bits at each end);
//   - URL-encoded, as a query value (space as +) and as a path segment (space as %20);
//   - hex, lower and upper case.
func encodings(v string) []string {
	b := []byte(v)
	out := []string{
		url.QueryEscape(v), url.PathEscape(v),
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		full := enc.EncodeToString(b)
		out = append(out, full, strings.TrimRight(full, "="))
		raw := enc.WithPadding(base64.NoPadding)
		for k := range 3 {
			// The value starts at bit 8k of the stream: character i (bits 6i to 6i+6) is the
			// value's alone when 8k <= 6i and 6i+6 <= 8k+8n.
			s := raw.EncodeToString(append(make([]byte, k), b...))
			from, to := (8*k+5)/6, (8*(k+len(b)))/6
			if from < to {
				out = append(out, s[from:to])
			}
		}
	}
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
