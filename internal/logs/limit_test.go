package logs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0 bytes", 1023: "1023 bytes", 1 << 10: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB",
		937 << 20: "937 MiB", 3 << 29: "1.5 GiB", 10<<30 + 1<<28: "10 GiB", 32<<20 - 100: "32 MiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRingKeepsTheLastBytes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 7, 100, 4096} {
		r := &ring{size: size}
		var all []byte
		for range 200 {
			p := make([]byte, rng.IntN(3*size+1))
			for i := range p {
				p[i] = byte('a' + rng.IntN(26))
			}
			r.write(p)
			all = append(all, p...)
			if cap(r.data) > size {
				t.Fatalf("size %d: the ring holds %d bytes of memory", size, cap(r.data))
			}
		}
		want := all[max(0, len(all)-size):]
		if got := r.bytes(); !bytes.Equal(got, want) || r.total != int64(len(all)) {
			t.Fatalf("size %d: ring has %q (total %d), want %q (total %d)", size, got, r.total, want, len(all))
		}
	}
}

// limitedLog writes lines of output (each naming its number, some holding the secret) to a
// Writer limited to limit and returns the stored log.
func limitedLog(t *testing.T, limit int64, lines int, secret string, rng *rand.Rand) string {
	t.Helper()
	sink := newSink()
	a := startAppender(t, sink)
	a.JobLimit = limit
	w := a.Writer(1, 1, []string{secret})
	var out bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&out, "line %07d %s and some more output to make it longer\n", i, secret)
	}
	writeInPieces(t, w, out.Bytes(), rng)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log, _ := sink.text(1, 1)
	return log
}

func TestWriterLimitKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	const secret = "s3cr3t-Value-42"
	rng := rand.New(rand.NewPCG(3, 4))
	const lines = 50_000 // about 4 MiB
	log := limitedLog(t, limit, lines, secret, rng)

	if strings.Contains(log, secret) {
		t.Fatal("the secret is in the limited log")
	}
	notice := limitNotice(limit)
	if len(log) > limit+len(notice)+200 {
		t.Fatalf("stored %d bytes for a limit of %d", len(log), limit)
	}
	head, rest, ok := strings.Cut(log, notice)
	if !ok {
		t.Fatalf("no limit notice in the log:\n%.300s", log)
	}
	marker := regexp.MustCompile(`^✂ (\d+\.?\d* [KM]iB) of log dropped: the job's log is limited to 256 KiB \(--max-job-log\); the last (\d+\.?\d* KiB) follow\n`)
	m := marker.FindStringSubmatch(rest)
	if m == nil {
		t.Fatalf("the tail does not start with the marker:\n%.300s", rest)
	}
	tail := rest[len(m[0]):]
	if len(head) > limit/2 || len(tail) > limit/2 || len(tail) < limit/2-200 {
		t.Errorf("head %d bytes, tail %d, want each at most %d and the tail nearly that", len(head), len(tail), limit/2)
	}
	if !strings.HasPrefix(head, "line 0000000 ***") || !strings.HasSuffix(head, "\n") {
		t.Errorf("the head does not start with the first line or does not end with a whole line: %.80q … %q", head, head[max(0, len(head)-80):])
	}
	if !strings.HasPrefix(tail, "line ") || !strings.HasSuffix(tail, fmt.Sprintf("line %07d *** and some more output to make it longer\n", lines-1)) {
		t.Errorf("the tail does not hold whole lines up to the last: %.80q … %q", tail, tail[max(0, len(tail)-80):])
	}
	// Every stored line is whole and in order, and the dropped count adds up.
	var prev = -1
	for _, l := range strings.Split(strings.TrimSuffix(head+tail, "\n"), "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "line %07d *** and some more output to make it longer", &n); err != nil || n <= prev {
			t.Fatalf("line %q after line %d", l, prev)
		}
		prev = n
	}
	lineLen := len(fmt.Sprintf("line %07d *** and some more output to make it longer\n", 0))
	if got, want := m[1], formatBytes(int64(lineLen*lines-len(head)-len(tail))); got != want {
		t.Errorf("marker says %s dropped, want %s", got, want)
	}
}

func TestWriterUnderLimitHasNoMarker(t *testing.T) {
	t.Parallel()
	log := limitedLog(t, 1<<20, 1000, "pw", rand.New(rand.NewPCG(5, 6)))
	if strings.Contains(log, "✂") || strings.Count(log, "\n") != 1000 {
		t.Fatalf("a log under its limit was changed: %d lines, marker %v", strings.Count(log, "\n"), strings.Contains(log, "✂"))
	}
}

// A log past half its limit but not past the limit keeps everything: the notice, then the rest.
func TestWriterHeldBackTailWithoutDrop(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	lineLen := len("line 0000000 pw and some more output to make it longer\n")
	lines := (limit * 3 / 4) / lineLen
	log := limitedLog(t, limit, lines, "pw", rand.New(rand.NewPCG(7, 8)))
	if strings.Contains(log, "of log dropped") || !strings.Contains(log, limitNotice(limit)) {
		t.Fatalf("want the notice and no marker:\n%.300s", log)
	}
	if got := strings.Count(strings.Replace(log, limitNotice(limit), "", 1), "\n"); got != lines {
		t.Fatalf("%d lines kept of %d", got, lines)
	}
}

// A secret that straddles the point where the head fills, or that the ring cuts, never shows:
// output is masked before the cut.
func TestWriterLimitMasksAcrossTheCut(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdefghij"
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 9))
		sink := newSink()
		a := startAppender(t, sink)
		a.JobLimit = 64<<10 + int64(rng.IntN(4096))
		w := a.Writer(1, 1, []string{secret})
		// One long line of secrets (no newline to cut at) and noise of odd lengths.
		var out bytes.Buffer
		for out.Len() < 400<<10 {
			out.WriteString(secret)
			out.WriteString(strings.Repeat("x", rng.IntN(7)))
		}
		writeInPieces(t, w, out.Bytes(), rng)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		log, _ := sink.text(1, 1)
		for _, frag := range []string{"0123456789", "abcdefghij", "9abcde"} {
			if strings.Contains(log, frag) {
				t.Fatalf("seed %d: a piece of the secret (%q) is in the log", seed, frag)
			}
		}
		if !strings.Contains(log, "of log dropped") {
			t.Fatalf("seed %d: no marker", seed)
		}
	}
}

// Memory stays bounded by the tail, however much a step prints past its limit.
func TestWriterLimitMemory(t *testing.T) {
	t.Parallel()
	const total = 512 << 20
	sink := newSink()
	sink.discard = true
	a := startAppender(t, sink)
	a.JobLimit = 16 << 20
	w := a.Writer(5, 1, []string{"secret-value"})
	_, peak := writeMeasuringHeap(t, w, bytes.Repeat([]byte("y\n"), 32<<10), total)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	t.Logf("wrote %d MiB with a 16 MiB limit: peak HeapInuse %.1f MiB, %d bytes stored", total>>20, float64(peak)/(1<<20), sink.bytes)
	if peak > 48<<20 {
		t.Errorf("HeapInuse reached %.1f MiB, want < 48 MiB (the 8 MiB tail and the test's own)", float64(peak)/(1<<20))
	}
	if sink.bytes > 16<<20+1024 || sink.bytes < 16<<20-1024 {
		t.Errorf("stored %d bytes, want about the 16 MiB limit", sink.bytes)
	}
}
