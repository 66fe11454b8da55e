package pipeline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/rules"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		designExample,
		designExampleDeclared,
		minimal,
		containerJobs,
		withSecrets,
		"",
		"name: x\nstages: [\n",
		"a: 1\n---\nb: 2\n",
		"name: x\nstages:\n  - &s {name: s, jobs: [{name: j, steps: [{run: a}]}]}\n  - <<: *s\n    name: t\n",
		"variables: {FLOWD_X: 1, T: {options: [a], default: b}}\nconcurrency: {group: g, max_running: -1}\n",
		"variables: {S: x}\nwebhook:\n  filter: 'body.a == \"b\" && bodyy'\n  variables:\n    S: \"headers[\\\"x\\\"] + \\u00e9\"\n" + minimal,
		"variables: {S: x}\nwebhook:\n  filter: |\n    body.a &&\n      has(event.b\n  variables:\n    S: >\n      size(\n" + minimal,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src)
		if err != nil {
			if p != nil {
				t.Errorf("Parse returned a pipeline and an error")
			}
			perr, ok := err.(*Error)
			if !ok || len(perr.Problems) == 0 {
				t.Fatalf("error = %#v, want *Error with problems", err)
			}
			// A syntax error is placed inside the source (or just after its last line).
			lines := bytes.Count(src, []byte("\n")) + 1
			for _, pr := range perr.Problems {
				if strings.HasPrefix(pr.Message, "invalid YAML") && (pr.Line < 1 || pr.Line > lines || pr.Column < 1) {
					t.Errorf("syntax error at %d:%d of a %d-line source: %s", pr.Line, pr.Column, lines, pr.Message)
				}
			}
			return
		}
		if p == nil || len(p.Stages) == 0 {
			t.Fatalf("Parse = %#v, nil error, want a pipeline with stages", p)
		}
		for _, st := range p.Stages {
			if len(st.Jobs) == 0 {
				t.Fatalf("stage %q without jobs", st.Name)
			}
			for _, j := range st.Jobs {
				if len(j.Steps) == 0 {
					t.Fatalf("job %q without steps", j.Name)
				}
			}
		}
		if w := p.Webhook; w != nil {
			env, err := rules.NewEnv()
			if err != nil {
				t.Fatal(err)
			}
			exprs := []string{w.Filter}
			for _, v := range w.Variables {
				exprs = append(exprs, v.Expr)
			}
			for _, e := range exprs {
				if _, err := env.Compile(e); e != "" && err != nil {
					t.Errorf("webhook expression %q passed Parse but does not compile: %v", e, err)
				}
			}
		}
		if _, _, err := MaskSecrets(src); err != nil {
			t.Errorf("MaskSecrets of a valid definition: %v", err)
		}
	})
}
