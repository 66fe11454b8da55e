package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flowd agent's flags and FLOWD_AGENT_* variables: bad input is a usage error (2) naming what
// to fix, and the token never shows.
func TestAgentFlags(t *testing.T) {
	t.Parallel()
	const token = "fat_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"nothing", nil, nil, []string{"--server is required", "no agent token: give --token-file FILE or FLOWD_AGENT_TOKEN"}},
		{"bad env", map[string]string{"FLOWD_AGENT_SERVER": "ci.example.com", "FLOWD_AGENT_TOKEN": token, "FLOWD_AGENT_CAPACITY": "many"},
			nil, []string{`FLOWD_AGENT_CAPACITY="many"`, `--server must be an http(s) URL, got "ci.example.com"`}},
		{"flags", map[string]string{"FLOWD_AGENT_TOKEN": token},
			[]string{"--server", "http://127.0.0.1:1", "--capacity", "0", "--labels", "os=linux,gpu", "--name", "a b", "--max-job-log", "1k"},
			[]string{"--capacity must be between 1 and 256, got 0", `label "gpu" must be key=value`, `--name must be 1-100 characters`, "--max-job-log must be at least 64KiB"}},
		{"empty token file", map[string]string{"FLOWD_AGENT_SERVER": "http://127.0.0.1:1"}, []string{"--token-file", empty},
			[]string{"--token-file " + empty + " is empty"}},
		{"missing token file", map[string]string{"FLOWD_AGENT_SERVER": "http://127.0.0.1:1", "FLOWD_AGENT_TOKEN_FILE": empty + ".nope"}, nil,
			[]string{"--token-file: open " + empty + ".nope"}},
		{"argument", map[string]string{"FLOWD_AGENT_TOKEN": token}, []string{"--server", "http://x", "extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, "", append([]string{"agent"}, tt.args...)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stdout+r.stderr, token) {
				t.Errorf("the token was printed")
			}
		})
	}
}
