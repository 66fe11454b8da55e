package main

import (
	"io"
	"strings"
	"testing"
)

// TestNewUserPassword: the password `flowd user passwd` sets comes from --generate, stdin or
// FLOWD_NEW_PASSWORD, or is typed twice at the prompt, where two different ones change nothing.
func TestNewUserPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                string
		stdin, env          string
		fromStdin, generate bool
		want, wantErr       string
	}{
		{name: "typed twice", stdin: "brand-new-pw\nbrand-new-pw\n", want: "brand-new-pw"},
		{name: "typed differently", stdin: "brand-new-pw\nbrand-new-pX\n", wantErr: "differ"},
		{name: "typed once", stdin: "brand-new-pw\n", wantErr: "no input"},
		{name: "stdin", stdin: "from-stdin-pw\n", fromStdin: true, want: "from-stdin-pw"},
		{name: "environment", env: "from-env-pw", want: "from-env-pw"},
		{name: "both ways", fromStdin: true, generate: true, wantErr: "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cli{stdin: strings.NewReader(tc.stdin), stdout: io.Discard, stderr: io.Discard,
				getenv: func(k string) string {
					if k == "FLOWD_NEW_PASSWORD" {
						return tc.env
					}
					return ""
				}}
			got, err := c.newUserPassword("gina", tc.fromStdin, tc.generate)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("newUserPassword = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("newUserPassword = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	c := &cli{getenv: func(string) string { return "" }}
	a, err1 := c.newUserPassword("gina", false, true)
	b, err2 := c.newUserPassword("gina", false, true)
	if err1 != nil || err2 != nil || len(a) < 16 || a == b {
		t.Errorf("--generate gave %q and %q (%v, %v); want two different long passwords", a, b, err1, err2)
	}
}
