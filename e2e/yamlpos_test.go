package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestYAMLSyntaxErrorPositions: a YAML syntax error comes back from the API (validate, which the
// editor calls, and create) at the line and column of the character to fix, and `flowd pipeline
// apply -f FILE` prints it as FILE:LINE:COLUMN.
func TestYAMLSyntaxErrorPositions(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn)
	tok := srv.token("admin", adminPassword)
	dir := t.TempDir()
	tests := []struct {
		name, src string
		line, col int
		message   string
	}{
		{"tab on line 4", "name: tab\nstages:\n  - name: a\n\tjobs: []\n", 4, 1,
			"invalid YAML: found a tab character that violates indentation"},
		{"quote not closed on its line", "name: quote\ndescription: \"abc\nstages: []\nfoo: \"x\"\n", 2, 14,
			"invalid YAML: the quoted string that starts here is not closed on its line (so YAML fails later, at 4:7: did not find expected key)"},
		{"bracket not closed on its line", "name: bracket\nstages: [a, b\nfoo: 1\n", 2, 9,
			"invalid YAML: the '[' here is not closed on its line (so YAML fails later, at 3:1: did not find expected ',' or ']')"},
		{"key indented under a value", "name: key\ndescription: a\n  stages: []\n", 3, 3,
			"invalid YAML: mapping values are not allowed in this context (this line is indented more than line 2, so it continues line 2's value)"},
	}
	for i, tt := range tests {
		var e struct {
			Error struct {
				Code     string
				Problems []struct {
					Line, Column int
					Message      string
				}
			}
		}
		for _, path := range []string{"/api/v1/pipelines/validate", "/api/v1/pipelines"} {
			code := srv.api(tok, "POST", path, tt.src, &e)
			if p := e.Error.Problems; code != 422 || len(p) != 1 || p[0].Line != tt.line || p[0].Column != tt.col || p[0].Message != tt.message {
				t.Errorf("%s: POST %s: %d %+v, want 422 with %d:%d: %s", tt.name, path, code, e.Error, tt.line, tt.col, tt.message)
			}
		}
		file := filepath.Join(dir, fmt.Sprintf("p%d.yml", i))
		if err := os.WriteFile(file, []byte(tt.src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, exit := srv.cli(tok, "pipeline", "apply", "-f", file)
		want := fmt.Sprintf("%s:%d:%d: %s\n", file, tt.line, tt.col, tt.message)
		if exit != 1 || !strings.HasPrefix(errOut, want) {
			t.Errorf("%s: flowd pipeline apply: exit %d\n%s\nwant first line %q", tt.name, exit, errOut, want)
		}
	}
}
