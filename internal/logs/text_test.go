package logs

import (
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// textOf writes pieces as chunks (one second apart from t0) through a Text with the options
// and returns what it wrote.
func textOf(t *testing.T, strip, stamps bool, pieces ...string) string {
	t.Helper()
	var b strings.Builder
	w := NewText(&b)
	w.StripANSI, w.Timestamps = strip, stamps
	for i, p := range pieces {
		if err := w.Chunk(run.LogChunk{Data: []byte(p), At: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

var t0 = time.Date(2026, 12, 7, 16, 3, 55, 123456789, time.FixedZone("CET", 3600))

// Real escape sequences, as programs print them, are dropped whole (also when a chunk ends in
// the middle of one); the text around them is kept byte for byte.
func TestTextStripsANSI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		pieces []string
		want   string
	}{
		{"colours", []string{"\x1b[1;32mok\x1b[0m done\n"}, "ok done\n"},
		{"256 and truecolour", []string{"\x1b[38;5;196mred\x1b[38;2;0;128;255m blue\x1b[m\n"}, "red blue\n"},
		{"cursor and erase", []string{"50%\r\x1b[2K\x1b[1A\x1b[10;20H100%\x1b[?25l\x1b[?25h\n"}, "50%\r100%\n"},
		{"OSC title with BEL", []string{"\x1b]0;building app\x07start\n"}, "start\n"},
		{"OSC 8 link with ST", []string{"see \x1b]8;;https://example.com/a\x1b\\the docs\x1b]8;;\x1b\\.\n"}, "see the docs.\n"},
		{"charset and keypad", []string{"\x1b(Bplain\x1b=\x1b>\x1b7saved\x1b8\n"}, "plainsaved\n"},
		{"DCS", []string{"a\x1bPq#0;2;0;0;0\x1b\\b\n"}, "ab\n"},
		{"cut between chunks", []string{"x\x1b", "[3", "1mred\x1b]0;ti", "tle\x07\x1b[0m\n"}, "xred\n"},
		{"cut CSI ends at a newline", []string{"\x1b[31\nnext\n"}, "\nnext\n"},
		{"unended OSC ends at a newline", []string{"\x1b]0;no end\nnext line\n"}, "\nnext line\n"},
		{"UTF-8 kept", []string{"▶ build ✔ \x1b[32mgrün\x1b[0m\n"}, "▶ build ✔ grün\n"},
	} {
		if got := textOf(t, true, false, c.pieces...); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// Without StripANSI every byte is kept.
	if got := textOf(t, false, false, "\x1b[31mred\x1b[0m\n"); got != "\x1b[31mred\x1b[0m\n" {
		t.Errorf("kept: %q", got)
	}
}

// Each line is prefixed with the time of the chunk in which it started, in UTC with milliseconds.
func TestTextTimestamps(t *testing.T) {
	t.Parallel()
	got := textOf(t, false, true, "one\ntwo ", "ends here\nthree\n", "", "\x1b[32mfour\x1b[0m\n")
	want := "2026-12-07T15:03:55.123Z one\n" +
		"2026-12-07T15:03:55.123Z two ends here\n" +
		"2026-12-07T15:03:56.123Z three\n" +
		"2026-12-07T15:03:58.123Z \x1b[32mfour\x1b[0m\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got, want := textOf(t, true, true, "\x1b[32mok\x1b[0m\n"), "2026-12-07T15:03:55.123Z ok\n"; got != want {
		t.Errorf("stripped with timestamps: %q, want %q", got, want)
	}
}

// However a log is cut into chunks (here down to single bytes, all written at one time), the
// text comes out the same: state carries over, and copying runs of plain text changes nothing.
func TestTextSameForAnyCut(t *testing.T) {
	t.Parallel()
	const log = "\x1b]0;title\x07▶ build\n\x1b[1;32mok\x1b[0m done\r\x1b[2K50%\n\x1b]8;;u\x1b\\link\x1b]8;;\x1b\\\nhalf \x1b[31" +
		"\nline\x1b(B end\n\x1b]unended\nlast"
	for _, opts := range [][2]bool{{true, false}, {false, true}, {true, true}} {
		whole := textOf(t, opts[0], opts[1], log)
		var b strings.Builder
		w := NewText(&b)
		w.StripANSI, w.Timestamps = opts[0], opts[1]
		for i := range len(log) {
			if err := w.Chunk(run.LogChunk{Data: []byte{log[i]}, At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if b.String() != whole {
			t.Errorf("strip %v, timestamps %v: byte by byte\n%q\nwhole\n%q", opts[0], opts[1], b.String(), whole)
		}
	}
	want := "2026-12-07T15:03:55.123Z ▶ build\n2026-12-07T15:03:55.123Z ok done\r50%\n2026-12-07T15:03:55.123Z link\n" +
		"2026-12-07T15:03:55.123Z half \n2026-12-07T15:03:55.123Z line end\n2026-12-07T15:03:55.123Z \n2026-12-07T15:03:55.123Z last"
	if got := textOf(t, true, true, log); got != want {
		t.Errorf("stripped with timestamps:\n%q\nwant\n%q", got, want)
	}
}
