package logs

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// DefaultJobLimit is the largest log a job keeps when the Appender's JobLimit is not set.
const DefaultJobLimit = 64 << 20

// A job's log is limited to JobLimit bytes (after masking). Its first half (the head) is
// stored as it comes. When the head is full a notice line says so, and the rest of the output
// goes to a ring buffer of the other half (the tail), which keeps the most recent bytes. When
// the job ends the ring is stored after a marker line that says how much was dropped. Memory
// per job is bounded by the tail, never by the log; a step that prints fast past the head runs
// at memory speed instead of waiting for commits. Output is masked before it reaches the ring,
// so no cut can split a secret: the ring only ever holds masked text.

// limitNotice is the line stored when a job's log reaches its head.
func limitNotice(limit int64) string {
	return fmt.Sprintf("✂ the job's log reached half its limit of %s (--max-job-log): the rest of its output is held back; when the job ends its last %s are kept\n",
		formatBytes(limit), formatBytes(tailSize(limit)))
}

// limitMarker is the line stored before the tail when some output was dropped.
func limitMarker(dropped, limit, kept int64) string {
	return fmt.Sprintf("✂ %s of log dropped: the job's log is limited to %s (--max-job-log); the last %s follow\n",
		formatBytes(dropped), formatBytes(limit), formatBytes(kept))
}

// tailSize is the part of limit kept at the end of a log; the rest is the head.
func tailSize(limit int64) int64 { return limit / 2 }

// formatBytes prints n in the largest binary unit it reaches, rounded, with one decimal below 10:
// "937 MiB", "1.5 GiB", "512 bytes".
func formatBytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, unit := float64(n)/(1<<10), units[0]
	for _, u := range units[1:] {
		if v < 1<<10 {
			break
		}
		v, unit = v/(1<<10), u
	}
	if v < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
	}
	return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + " " + unit
}

// headCut returns how much of p fits in a head with room bytes left: up to its last newline
// within room, or (with none) room backed off to the start of a UTF-8 character.
func headCut(p []byte, room int64) int {
	if int64(len(p)) <= room {
		return len(p)
	}
	if i := bytes.LastIndexByte(p[:room], '\n'); i >= 0 {
		return i + 1
	}
	n := int(room)
	for k := 0; k < utf8.UTFMax && n > 0 && !utf8.RuneStart(p[n]); k++ {
		n--
	}
	return n
}

// ring keeps the last size bytes written to it. Its memory grows with what it holds, up to size.
type ring struct {
	data  []byte // the bytes held; once len(data) == size, data[next:] + data[:next] in order
	size  int
	next  int
	total int64 // bytes ever written
}

func (r *ring) write(p []byte) {
	r.total += int64(len(p))
	if len(p) >= r.size {
		r.data = append(r.grow(r.size)[:0], p[len(p)-r.size:]...)
		r.next = 0
		return
	}
	if room := r.size - len(r.data); room > 0 {
		k := min(room, len(p))
		r.data = append(r.grow(len(r.data)+k), p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		k := copy(r.data[r.next:], p)
		p = p[k:]
		r.next = (r.next + k) % r.size
	}
}

// grow returns r.data with room for n bytes, at most doubling its capacity at a time.
func (r *ring) grow(n int) []byte {
	if n <= cap(r.data) {
		return r.data
	}
	c := min(max(n, 2*cap(r.data), MaxChunk), r.size)
	d := make([]byte, len(r.data), c)
	copy(d, r.data)
	return d
}

// bytes returns what the ring holds, oldest first, rotating it in place (no second buffer).
func (r *ring) bytes() []byte {
	if r.next != 0 {
		reverse(r.data[:r.next])
		reverse(r.data[r.next:])
		reverse(r.data)
		r.next = 0
	}
	return r.data
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// tail returns the ring's contents as the end of a limited log: when output was dropped, the
// marker line to store before it and the tail from its first whole line (or character). kept
// is the ring's own memory, so ending a limited job costs no second copy of its tail.
func (r *ring) tail(limit int64) (marker string, kept []byte) {
	kept = r.bytes()
	dropped := r.total - int64(len(kept))
	if dropped == 0 {
		return "", kept
	}
	skip := 0
	if i := bytes.IndexByte(kept[:min(len(kept), MaxChunk)], '\n'); i >= 0 {
		skip = i + 1
	} else {
		for skip < len(kept) && skip < utf8.UTFMax && !utf8.RuneStart(kept[skip]) {
			skip++
		}
	}
	kept = kept[skip:]
	return limitMarker(dropped+int64(skip), limit, int64(len(kept))), kept
}
