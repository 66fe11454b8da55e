package githost

import (
	"strings"
	"testing"
	"time"
)

func TestGlob(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"main", "main", true},
		{"main", "main2", false},
		{"*", "main", true},
		{"*", "feature/x", false},
		{"release/*", "release/1.0", true},
		{"release/*", "release/1/2", false},
		{"release/*", "release", false},
		{"release/**", "release/1/2", true},
		{"release/**", "release", true}, // '**' takes zero segments too
		{"**", "a/b/c", true},
		{"**", "", true},
		{"v*", "v1.2.0", true},
		{"v*", "release-1", false},
		{"v?.?", "v1.2", true},
		{"v?.?", "v1.20", false},
		{"v[0-9]*", "v1", true},
		{"v[0-9]*", "vx", false},
		{"v[!0-9]*", "vx", true},
		{"v[^0-9]*", "v1", false},
		{"src/**", "src/a/b.go", true},
		{"src/**", "docs/a.md", false},
		{"**/*.go", "main.go", true},
		{"**/*.go", "cmd/flowd/main.go", true},
		{"**/*.go", "cmd/flowd/main.c", false},
		{"src/**/test/*.go", "src/test/a.go", true},
		{"src/**/test/*.go", "src/x/y/test/a.go", true},
		{"src/**/test/*.go", "src/x/y/test/z/a.go", false},
		{"docs/*.md", "docs/a.md", true},
		{"docs/*.md", "docs/sub/a.md", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"[", "[", false}, // malformed: matches nothing
		{"Main", "main", false},
	}
	for _, tc := range cases {
		if got := Glob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestGlobManyStarsStaysFast(t *testing.T) {
	t.Parallel()
	pattern := strings.Repeat("**/", 40) + "x"
	name := strings.Repeat("a/", 200) + "y"
	start := time.Now()
	if Glob(pattern, name) {
		t.Error("matched")
	}
	if d := time.Since(start); d > 20*time.Second { // exponential matching would take ages; this is no speed test
		t.Errorf("took %v", d)
	}
}
