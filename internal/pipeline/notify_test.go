package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseNotify(t *testing.T) {
	t.Parallel()
	src := `name: n
variables:
  HOOK_KEY: {secret: true}
notify:
  - url: https://hooks.example.com/flowd
    on: [failure, canceled]
    secret: HOOK_KEY
  - url: http://10.0.0.1:8080/x
  - url: https://example.com/ok
    on: success
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: make
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notify) != 3 {
		t.Fatalf("notify = %+v", p.Notify)
	}
	if n := p.Notify[0]; n.URL != "https://hooks.example.com/flowd" || n.Secret != "HOOK_KEY" ||
		!slices.Equal(n.On, []string{"failed", "canceled"}) || n.Wants("success") || !n.Wants("failed") {
		t.Errorf("notify 0 = %+v", n)
	}
	if n := p.Notify[1]; n.Secret != "" || !slices.Equal(n.On, []string{"success", "failed", "canceled"}) {
		t.Errorf("notify 1 (defaults) = %+v", n)
	}
	if n := p.Notify[2]; !slices.Equal(n.On, []string{"success"}) {
		t.Errorf("notify 2 = %+v", n)
	}
	c := p.clone()
	c.Notify[0].On[0] = "changed"
	if p.Notify[0].On[0] != "failed" {
		t.Error("clone shares a target's statuses")
	}
}

func TestParseNotifyProblems(t *testing.T) {
	t.Parallel()
	base := "name: x\nvariables:\n  abc: \"1\"\n  K: {secret: true}\nnotify:\n"
	stages := "stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	for _, c := range []struct{ yaml, want string }{
		{"  - on: [success]\n", `6:5: notify[0].url: is required`},
		{"  - url: ftp://example.com/x\n", `6:10: notify[0].url: "ftp://example.com/x" is not an http or https URL`},
		{"  - url: https://\n", `6:10: notify[0].url: "https://" is not an http or https URL`},
		{"  - url: https://e.com\n    on: [done]\n", `7:9: notify[0].on: "done" is not a run end`},
		{"  - url: https://e.com\n    on: []\n", `7:9: notify[0].on: names no run end`},
		{"  - url: https://e.com\n    secret: abc\n", `7:13: notify[0].secret: "abc" is not secret`},
		{"  - url: https://e.com\n    secret: NOPE\n", `7:13: notify[0].secret: "NOPE" is not a declared variable`},
		{"  - url: https://e.com\n    when: now\n", `7:5: notify[0].when: unknown key`},
		{"  - https://e.com\n", `6:5: notify[0]: must be a mapping with url`},
	} {
		_, err := Parse([]byte(base + c.yaml + stages))
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v; want %q", c.yaml, err, c.want)
		}
	}
}
