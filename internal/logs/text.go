package logs

import (
	"bytes"
	"io"

	"github.com/flowd/flowd/internal/run"
)

// Text writes chunks' bytes as the plain-text log, optionally without terminal escape sequences
// and with each line prefixed by the time of the chunk it started in. It keeps its state from
// one chunk to the next, so a sequence or a line cut between chunks comes out whole.
type Text struct {
	// StripANSI drops escape sequences: CSI (colours, cursor moves), OSC (window titles,
	// links), the other string sequences (DCS, SOS, PM, APC) and the short ESC sequences.
	StripANSI bool
	// Timestamps prefixes each line with the time of the chunk in which it started (UTC,
	// RFC 3339 with milliseconds, TimeFormat), then a space.
	Timestamps bool

	w       io.Writer
	midLine bool // the last byte written was not a newline
	esc     escState
	buf     []byte
}

// NewText returns a Text writer to w; set its options before the first Chunk.
func NewText(w io.Writer) *Text { return &Text{w: w} }

// escState is where StripANSI is in an escape sequence.
type escState uint8

const (
	escNone   escState = iota // in text
	escStart                  // after ESC
	escInter                  // after ESC and intermediate bytes (0x20–0x2F)
	escCSI                    // in ESC [ … up to its final byte
	escString                 // in ESC ] (or P, X, ^, _) … up to BEL or ESC \
	escStrEnd                 // after ESC in a string: \ ends it
)

// Chunk writes c's bytes.
func (t *Text) Chunk(c run.LogChunk) error {
	if !t.StripANSI && !t.Timestamps {
		_, err := t.w.Write(c.Data)
		return err
	}
	t.buf = t.buf[:0]
	var stamp []byte
	data := c.Data
	for len(data) > 0 {
		if n := t.plain(data); n > 0 {
			t.buf = append(t.buf, data[:n]...)
			t.midLine = data[n-1] != '\n'
			data = data[n:]
			continue
		}
		b := data[0]
		data = data[1:]
		if t.StripANSI && !t.keep(b) {
			continue
		}
		if t.Timestamps && !t.midLine {
			if stamp == nil {
				stamp = append(c.At.UTC().AppendFormat(nil, TimeFormat), ' ')
			}
			t.buf = append(t.buf, stamp...)
		}
		t.buf = append(t.buf, b)
		t.midLine = b != '\n'
	}
	if len(t.buf) == 0 {
		return nil
	}
	_, err := t.w.Write(t.buf)
	return err
}

// plain returns how many bytes at the start of data can be written as they are: none inside an
// escape sequence or at a line's start that needs its time; else up to the next ESC (when
// stripping) or newline (with timestamps), so Chunk copies text in runs, not byte by byte.
func (t *Text) plain(data []byte) int {
	if t.esc != escNone || t.Timestamps && !t.midLine {
		return 0
	}
	n := len(data)
	if t.Timestamps {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			n = i
		}
	}
	if t.StripANSI {
		if i := bytes.IndexByte(data[:n], 0x1b); i >= 0 {
			n = i
		}
	}
	return n
}

// keep moves the escape-sequence state by b and says whether b is text to write. A control
// byte that cannot be part of a sequence (a newline in a cut-off CSI, an OSC never ended) ends
// the sequence and is written, so a broken sequence cannot swallow the lines after it.
func (t *Text) keep(b byte) bool {
	switch t.esc {
	case escStart:
		switch {
		case b == '[':
			t.esc = escCSI
		case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
			t.esc = escString
		case b >= 0x20 && b <= 0x2f:
			t.esc = escInter
		case b >= 0x30 && b <= 0x7e:
			t.esc = escNone
		case b == 0x1b:
		default:
			t.esc = escNone
			return true
		}
		return false
	case escInter:
		switch {
		case b >= 0x20 && b <= 0x2f:
		case b >= 0x30 && b <= 0x7e:
			t.esc = escNone
		case b == 0x1b:
			t.esc = escStart
		default:
			t.esc = escNone
			return true
		}
		return false
	case escCSI:
		switch {
		case b >= 0x20 && b <= 0x3f:
		case b >= 0x40 && b <= 0x7e:
			t.esc = escNone
		case b == 0x1b:
			t.esc = escStart
		default:
			t.esc = escNone
			return true
		}
		return false
	case escString:
		switch b {
		case 0x07:
			t.esc = escNone
		case 0x1b:
			t.esc = escStrEnd
		case '\n':
			t.esc = escNone
			return true
		}
		return false
	case escStrEnd:
		if b == '\\' {
			t.esc = escNone
			return false
		}
		t.esc = escStart // ESC then something else: a new sequence begins
		return t.keep(b)
	}
	if b == 0x1b {
		t.esc = escStart
		return false
	}
	return true
}
