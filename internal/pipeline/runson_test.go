package pipeline

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestParseRunsOn: a job's runs-on is the pipeline's with its own over it, key by key; values
// are kept as their source text; a job without either asks for nothing (nil).
func TestParseRunsOn(t *testing.T) {
	t.Parallel()
	const src = `name: x
runs-on: {os: linux, arch: amd64}
stages:
  - name: s
    jobs:
      - name: inherit
        steps: [{run: a}]
      - name: own
        runs-on: {arch: arm64, gpu: true, cuda: 12.4, k8s.io/zone: eu-1_a}
        steps: [{run: a}]
      - name: empty
        runs-on: {}
        steps: [{run: a}]
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := map[string]string{"os": "linux", "arch": "amd64"}; !reflect.DeepEqual(p.RunsOn, want) {
		t.Errorf("pipeline runs-on = %v, want %v", p.RunsOn, want)
	}
	want := []map[string]string{
		{"os": "linux", "arch": "amd64"},
		{"os": "linux", "arch": "arm64", "gpu": "true", "cuda": "12.4", "k8s.io/zone": "eu-1_a"},
		{"os": "linux", "arch": "amd64"},
	}
	for i, j := range p.Stages[0].Jobs {
		if !reflect.DeepEqual(j.RunsOn, want[i]) {
			t.Errorf("job %s: runs-on = %v, want %v", j.Name, j.RunsOn, want[i])
		}
	}
	// The jobs' maps are their own: changing one changes no other (nor the pipeline's).
	p.Stages[0].Jobs[0].RunsOn["os"] = "windows"
	if p.RunsOn["os"] != "linux" || p.Stages[0].Jobs[2].RunsOn["os"] != "linux" {
		t.Errorf("jobs share the pipeline's runs-on map")
	}

	p, err = Parse([]byte("name: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n        runs-on:\n        steps: [{run: a}]\n      - name: k\n        steps: [{run: a}]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, j := range p.Stages[0].Jobs {
		if j.RunsOn != nil {
			t.Errorf("job %s: runs-on = %v, want nil", j.Name, j.RunsOn)
		}
	}
}

func TestParseRunsOnInvalid(t *testing.T) {
	t.Parallel()
	job := func(extra string) string {
		return "name: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps: [{run: a}]\n" + extra
	}
	const at = "stages[0].jobs[0]."
	many := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("l%d: v", i)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"not a mapping", job("        runs-on: gpu\n"), []string{`7:18: ` + at + `runs-on: must be a mapping of labels such as {os: linux, gpu: "true"}, not a value`}},
		{"a list", job("        runs-on: [linux, gpu]\n"), []string{`7:18: ` + at + `runs-on: must be a mapping of labels such as {os: linux, gpu: "true"}, not a sequence`}},
		{"bad key", job("        runs-on: {'g pu': 'true'}\n"), []string{`7:19: ` + at + `runs-on.g pu: "g pu" is not a label: use 1 to 100 letters, digits and . _ / -`}},
		{"bad value", job("        runs-on: {gpu: 'yes please'}\n"), []string{`7:24: ` + at + `runs-on.gpu: "yes please" is not a label value: use 1 to 100 letters, digits and . _ / -, such as "true" or linux`}},
		{"empty value", job("        runs-on: {gpu: ''}\n"), []string{`7:24: ` + at + `runs-on.gpu: "" is not a label value: use 1 to 100 letters, digits and . _ / -, such as "true" or linux`}},
		{"null value", job("        runs-on: {gpu: }\n"), []string{`7:19: ` + at + `runs-on.gpu: "" is not a label value: use 1 to 100 letters, digits and . _ / -, such as "true" or linux`}},
		{"list value", job("        runs-on: {gpu: [a]}\n"), []string{`7:24: ` + at + `runs-on.gpu: must be a string, not a sequence`}},
		{"long value", job("        runs-on: {gpu: " + strings.Repeat("a", 101) + "}\n"), []string{`7:24: ` + at + `runs-on.gpu: "` + strings.Repeat("a", 101) + `" is not a label value: use 1 to 100 letters, digits and . _ / -, such as "true" or linux`}},
		{"duplicate key", job("        runs-on: {gpu: a, gpu: b}\n"), []string{`7:27: ` + at + `runs-on.gpu: duplicate key (first at line 7)`}},
		{"typo of the key", job("        run-on: {gpu: a}\n"), []string{`7:9: ` + at + `run-on: unknown key (did you mean "runs-on"?)`}},
		{"too many", job("        runs-on: " + many(33) + "\n"), []string{`7:18: ` + at + `runs-on: 33 labels, at most 32`}},
		{"too many with the pipeline's", "runs-on: " + many(20) + "\n" + job("        runs-on: {a: b, c: d, e: f, g: h, i: j, k: l, m: n, o: p, q: r, s: t, u: v, w: x, y: z}\n"),
			[]string{`8:18: ` + at + `runs-on: 33 labels with the pipeline's runs-on, at most 32`}},
		{"pipeline level", "runs-on: {gpu: 'a b'}\n" + job(""), []string{`1:16: runs-on.gpu: "a b" is not a label value: use 1 to 100 letters, digits and . _ / -, such as "true" or linux`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.src))
			if p != nil {
				t.Fatalf("Parse returned a pipeline with an error")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParseDesignRunsOnExample: the example of docs/DESIGN.md's "Labels: runs-on (YAML)"
// parses (with a name) to what its comment says.
func TestParseDesignRunsOnExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### Labels: `runs-on` (YAML)\n```yaml\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("docs/DESIGN.md has no \"Labels: `runs-on` (YAML)\" example")
	}
	p, err := Parse([]byte("name: x\n" + block))
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	if got, want := p.Stages[0].Jobs[0].RunsOn, map[string]string{"os": "linux", "gpu": "true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("fit's runs-on = %v, want %v", got, want)
	}
}
