package logs

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestMaskEncodings(t *testing.T) {
	t.Parallel()
	const secret = "p@ss w0rd/+?&=é~x" // every escaping rule has something to do here
	b := []byte(secret)
	tests := []struct {
		name, form string
	}{
		{"base64", base64.StdEncoding.EncodeToString(b)},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(b)},
		{"base64 URL alphabet", base64.URLEncoding.EncodeToString(b)},
		{"base64 URL alphabet unpadded", base64.RawURLEncoding.EncodeToString(b)},
		{"query escape", url.QueryEscape(secret)},
		{"path escape", url.PathEscape(secret)},
		{"hex", hex.EncodeToString(b)},
		{"HEX", strings.ToUpper(hex.EncodeToString(b))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := "value=" + tt.form + "; done\n"
			if got, want := string(Mask([]byte(data), []string{secret})), "value=***; done\n"; got != want {
				t.Errorf("Mask(%q) = %q, want %q", data, got, want)
			}
		})
	}
	// Short values are masked as they are, but not in encodings that short.
	if got := string(Mask([]byte("ab YWI= 6162"), []string{"ab"})); got != "*** YWI= 6162" {
		t.Errorf("a two-byte secret: %q", got)
	}
	// Encodings of each line of a multi-line secret are masked too.
	line2 := base64.StdEncoding.EncodeToString([]byte("second-line-of-the-key"))
	if got := string(Mask([]byte("k: "+line2+"\n"), []string{"first-line\nsecond-line-of-the-key\n"})); got != "k: ***\n" {
		t.Errorf("a multi-line secret's line in base64: %q", got)
	}
}

// base64Runs matches runs of characters of either base64 alphabet.
var base64Runs = regexp.MustCompile(`[A-Za-z0-9+/_-]+`)

// leaks reports a 4-byte piece of secret that can be decoded from masked: every run of base64
// characters is decoded at each of its four character offsets, in both alphabets.
func leaks(masked, secret string) string {
	for _, run := range base64Runs.FindAllString(masked, -1) {
		for off := range 4 {
			if off >= len(run) {
				break
			}
			s := run[off:]
			s = s[:len(s)/4*4]
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				dec, _ := enc.DecodeString(strings.Map(func(r rune) rune {
					if enc == base64.StdEncoding && (r == '-' || r == '_') || enc == base64.URLEncoding && (r == '+' || r == '/') {
						return 'A'
					}
					return r
				}, s))
				for i := 0; i+4 <= len(secret); i++ {
					if bytes.Contains(dec, []byte(secret[i:i+4])) {
						return secret[i : i+4]
					}
				}
			}
		}
	}
	return ""
}

// A secret inside a longer base64 stream, at any offset and in either alphabet, cannot be
// read back from the masked text.
func TestMaskBase64InsideAStream(t *testing.T) {
	t.Parallel()
	const secret = "correct-horse-battery-staple"
	rng := rand.New(rand.NewPCG(11, 12))
	noise := func() []byte {
		p := make([]byte, rng.IntN(12))
		for i := range p {
			p[i] = byte(0x80 + rng.IntN(0x80)) // never a byte of the secret
		}
		return p
	}
	for i := range 300 {
		stream := append(append(noise(), secret...), noise()...)
		enc := []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding}[i%4]
		data := "Authorization: Basic " + enc.EncodeToString(stream) + "\n"
		if leaks(data, secret) == "" {
			t.Fatalf("the test cannot see the secret in %q", data)
		}
		masked := string(Mask([]byte(data), []string{secret}))
		if piece := leaks(masked, secret); piece != "" || !strings.Contains(masked, "***") {
			t.Fatalf("%d bytes before the secret: %q decodes to %q of it", len(stream)-len(secret), masked, piece)
		}
	}
}

// Encoded forms of a secret printed through a real Writer, in pieces, are masked in the log.
func TestWriterMasksEncodings(t *testing.T) {
	t.Parallel()
	const secret = "ghp_R2d2C3poAndBB8isHere"
	sink := newSink()
	a := startAppender(t, sink)
	w := a.Writer(1, 1, []string{secret})
	var out bytes.Buffer
	fmt.Fprintf(&out, "plain %s\n", secret)
	fmt.Fprintf(&out, "basic %s\n", base64.StdEncoding.EncodeToString([]byte("x-access-token:"+secret)))
	fmt.Fprintf(&out, "url https://example.com/?t=%s&u=%s\n", url.QueryEscape(secret+" !"), url.PathEscape("/"+secret))
	fmt.Fprintf(&out, "hex %x %X\n", secret, secret)
	writeInPieces(t, w, out.Bytes(), rand.New(rand.NewPCG(13, 14)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log, _ := sink.text(1, 1)
	if strings.Count(log, "***") < 6 || strings.Contains(log, "R2d2") || leaks(log, secret) != "" ||
		strings.Contains(strings.ToLower(log), hex.EncodeToString([]byte(secret[:4]))) {
		t.Fatalf("an encoded secret is readable in the log:\n%s", log)
	}
}
