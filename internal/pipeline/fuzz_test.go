package pipeline

import "testing"

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		designExample,
		designExampleDeclared,
		minimal,
		withSecrets,
		"",
		"name: x\nstages: [\n",
		"a: 1\n---\nb: 2\n",
		"name: x\nstages:\n  - &s {name: s, jobs: [{name: j, steps: [{run: a}]}]}\n  - <<: *s\n    name: t\n",
		"variables: {FLOWD_X: 1, T: {options: [a], default: b}}\nconcurrency: {group: g, max_running: -1}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src)
		if err != nil {
			if p != nil {
				t.Errorf("Parse returned a pipeline and an error")
			}
			if perr, ok := err.(*Error); !ok || len(perr.Problems) == 0 {
				t.Errorf("error = %#v, want *Error with problems", err)
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
		if _, _, err := MaskSecrets(src); err != nil {
			t.Errorf("MaskSecrets of a valid definition: %v", err)
		}
	})
}
