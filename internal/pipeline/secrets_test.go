package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

const withSecrets = `# deploy pipeline
name: deploy
variables:
  PLAIN: visible # not a secret
  API_KEY:
    secret: true
    default: "s3cr3t-value" # keep me
  DB_PASS: {secret: true, default: 12345}
  KEEP: {secret: true, default: "***"}
  EMPTY: {secret: true}
  MODE: {secret: true, default: blue, options: [blue, green]}
source:
  url: https://git.example.com/a.git
  credentials: API_KEY
stages:
  - name: s # the only stage
    jobs:
      - name: j
        steps:
          - run: echo "$API_KEY"
`

func TestMaskSecrets(t *testing.T) {
	t.Parallel()
	masked, secrets, err := MaskSecrets([]byte(withSecrets))
	if err != nil {
		t.Fatalf("MaskSecrets: %v", err)
	}
	text := string(masked)
	for _, s := range []string{"s3cr3t-value", "12345", "default: blue"} {
		if strings.Contains(text, s) {
			t.Errorf("masked text contains %q:\n%s", s, text)
		}
	}
	for _, s := range []string{`default: "***" # keep me`, "# deploy pipeline", "# not a secret", "# the only stage", "PLAIN: visible", "DB_PASS: {secret: true, default: \"***\"}"} {
		if !strings.Contains(text, s) {
			t.Errorf("masked text lacks %q:\n%s", s, text)
		}
	}
	wantSecrets := map[string]string{"API_KEY": "s3cr3t-value", "DB_PASS": "12345", "EMPTY": "", "MODE": "blue"}
	if !reflect.DeepEqual(secrets, wantSecrets) {
		t.Errorf("secrets = %q, want %q", secrets, wantSecrets)
	}

	orig, err := Parse([]byte(withSecrets))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(masked)
	if err != nil {
		t.Fatalf("Parse(masked): %v\n%s", err, text)
	}
	if v, _ := p.Variable("API_KEY"); v.Default != "***" {
		t.Errorf("masked API_KEY default = %q", v.Default)
	}
	got := p.WithSecrets(secrets)
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("WithSecrets(Parse(masked)) =\n%#v\nwant\n%#v", got, orig)
	}
	if v, _ := p.Variable("API_KEY"); v.Default != "***" {
		t.Errorf("WithSecrets changed its receiver")
	}
	if v, _ := got.Variable("KEEP"); v.Default != "***" {
		t.Errorf("KEEP = %q, want *** (absent from the map keeps its default)", v.Default)
	}

	// Masking masked text again returns no new secrets but the empty one.
	again, secrets2, err := MaskSecrets(masked)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != text || !reflect.DeepEqual(secrets2, map[string]string{"EMPTY": ""}) {
		t.Errorf("second MaskSecrets = %q, %q", again, secrets2)
	}
}

func TestMaskSecretsInvalid(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "a: [", "name: x\n"} {
		if _, _, err := MaskSecrets([]byte(src)); err == nil {
			t.Errorf("MaskSecrets(%q) succeeded", src)
		}
	}
}

func TestWithSecretsLeavesNonSecrets(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(withSecrets))
	if err != nil {
		t.Fatal(err)
	}
	got := p.WithSecrets(map[string]string{"PLAIN": "x", "API_KEY": "k", "NOPE": "y"})
	if v, _ := got.Variable("PLAIN"); v.Default != "visible" {
		t.Errorf("PLAIN = %q, want it untouched", v.Default)
	}
	if v, _ := got.Variable("API_KEY"); v.Default != "k" {
		t.Errorf("API_KEY = %q, want k", v.Default)
	}
	if _, ok := got.Variable("NOPE"); ok {
		t.Errorf("WithSecrets declared a variable")
	}
	if vals := got.SecretValues(); !reflect.DeepEqual(vals, []string{"k", "12345", "***", "blue"}) {
		t.Errorf("SecretValues = %q", vals)
	}
}
