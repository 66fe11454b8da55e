package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestResolveVariables(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte("name: x\nvariables:\n  abc: '123'\n  N: 1\n  B: false\n  TARGET: {default: staging, options: [staging, production]}\n  KEY: {secret: true, default: s}\n" + minimal[8:]))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{"abc": "123", "N": "1", "B": "false", "TARGET": "staging", "KEY": "s"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range defaults {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name        string
		body        string
		wantValues  map[string]string
		wantIgnored []string
		wantProbs   []VariableProblem
	}{
		{name: "empty object keeps defaults", body: `{}`, wantValues: with()},
		{name: "string as it is", body: `{"abc": "456 $(rm -rf /) \"q\""}`, wantValues: with("abc", `456 $(rm -rf /) "q"`)},
		{name: "empty string", body: `{"abc": ""}`, wantValues: with("abc", "")},
		{name: "numbers as sent", body: `{"abc": 1.50, "N": -2e10}`, wantValues: with("abc", "1.50", "N", "-2e10")},
		{name: "booleans as text", body: `{"B": true, "abc": false}`, wantValues: with("B", "true", "abc", "false")},
		{name: "value in options", body: `{"TARGET": "production"}`, wantValues: with("TARGET", "production")},
		{name: "secret override", body: `{"KEY": "new"}`, wantValues: with("KEY", "new")},
		{name: "undeclared keys ignored, sorted", body: `{"zeta": 1, "alpha": {}, "Abc": "x", "abc": "y"}`, wantValues: with("abc", "y"), wantIgnored: []string{"Abc", "alpha", "zeta"}},
		{name: "null", body: `{"abc": null}`, wantProbs: []VariableProblem{{"abc", "must be a string, number or boolean, not null"}}},
		{name: "object", body: `{"abc": {"a": 1}}`, wantProbs: []VariableProblem{{"abc", "must be a string, number or boolean, not an object"}}},
		{name: "array", body: `{"abc": [1]}`, wantProbs: []VariableProblem{{"abc", "must be a string, number or boolean, not an array"}}},
		{name: "outside options", body: `{"TARGET": "dev"}`, wantProbs: []VariableProblem{{"TARGET", `value "dev" is not one of the options (staging, production)`}}},
		{name: "number outside options", body: `{"TARGET": 1}`, wantProbs: []VariableProblem{{"TARGET", `value "1" is not one of the options (staging, production)`}}},
		{name: "reserved keys even undeclared", body: `{"FLOWD_X": "1", "flowd_run_id": "2", "PATH": "/tmp", "HOME": "/"}`, wantProbs: []VariableProblem{
			{"FLOWD_X", "reserved name: FLOWD_*, PATH and HOME are set by flowd"},
			{"HOME", "reserved name: FLOWD_*, PATH and HOME are set by flowd"},
			{"PATH", "reserved name: FLOWD_*, PATH and HOME are set by flowd"},
			{"flowd_run_id", "reserved name: FLOWD_*, PATH and HOME are set by flowd"},
		}},
		{name: "every problem at once", body: `{"abc": null, "N": [], "TARGET": "qa", "FLOWD_X": 1, "ok": 2, "B": true}`, wantProbs: []VariableProblem{
			{"FLOWD_X", "reserved name: FLOWD_*, PATH and HOME are set by flowd"},
			{"N", "must be a string, number or boolean, not an array"},
			{"TARGET", `value "qa" is not one of the options (staging, production)`},
			{"abc", "must be a string, number or boolean, not null"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var overrides map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.body), &overrides); err != nil {
				t.Fatal(err)
			}
			r, err := ResolveVariables(p, overrides)
			if tt.wantProbs != nil {
				var verr *VariableError
				if !errors.As(err, &verr) {
					t.Fatalf("err = %v, want *VariableError", err)
				}
				if r != nil {
					t.Errorf("Resolved = %#v, want nil with an error", r)
				}
				if !reflect.DeepEqual(verr.Problems, tt.wantProbs) {
					t.Errorf("problems = %q, want %q", verr.Problems, tt.wantProbs)
				}
				for _, pr := range tt.wantProbs {
					if !strings.Contains(err.Error(), pr.Key+": ") {
						t.Errorf("Error() = %q does not name %q", err.Error(), pr.Key)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveVariables: %v", err)
			}
			if !reflect.DeepEqual(r.Values, tt.wantValues) {
				t.Errorf("Values = %q, want %q", r.Values, tt.wantValues)
			}
			if want := tt.wantIgnored; !reflect.DeepEqual(r.Ignored, append([]string{}, want...)) {
				t.Errorf("Ignored = %q, want %q", r.Ignored, want)
			}
		})
	}
}

func TestResolveVariablesNil(t *testing.T) {
	t.Parallel()
	r, err := ResolveVariables(nil, map[string]json.RawMessage{"a": json.RawMessage(`1`), "b": nil})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Values) != 0 || !reflect.DeepEqual(r.Ignored, []string{"a", "b"}) {
		t.Errorf("Resolved = %#v", r)
	}
}

func TestVariableErrorMessage(t *testing.T) {
	t.Parallel()
	err := &VariableError{Problems: []VariableProblem{{"A", "bad"}, {"B", "worse"}}}
	if got, want := err.Error(), "invalid variables: A: bad; B: worse"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestResolveVariablesEnvLimits: values no process environment can hold are problems naming
// the variable, and the limits are exact.
func TestResolveVariablesEnvLimits(t *testing.T) {
	t.Parallel()
	p := &Pipeline{Variables: []Variable{{Name: "abc"}, {Name: "KEY", Secret: true, Default: "k"}}}
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	fits := strings.Repeat("x", MaxEnvEntry-len("abc="))
	cases := []struct {
		name      string
		overrides map[string]json.RawMessage
		key, says string // "" = accepted
	}{
		{"a NUL byte", map[string]json.RawMessage{"abc": json.RawMessage(`"a\u0000b"`)}, "abc", "NUL byte (at byte 1)"},
		{"a NUL byte in a secret", map[string]json.RawMessage{"KEY": str("s\x00")}, "KEY", "NUL byte"},
		{"the longest entry", map[string]json.RawMessage{"abc": str(fits)}, "", ""},
		{"one byte more", map[string]json.RawMessage{"abc": str(fits + "x")}, "abc", "131072 bytes, over the 131071"},
		{"the issue's 131,100 bytes", map[string]json.RawMessage{"abc": str(strings.Repeat("v", 131100))}, "abc", "MAX_ARG_STRLEN"},
	}
	for _, c := range cases {
		_, err := ResolveVariables(p, c.overrides)
		var verr *VariableError
		switch {
		case c.key == "" && err != nil:
			t.Errorf("%s: %v, want accepted", c.name, err)
		case c.key != "" && (!errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Key != c.key ||
			!strings.Contains(verr.Problems[0].Message, c.says)):
			t.Errorf("%s: %v, want a problem for %s saying %q", c.name, err, c.key, c.says)
		}
		if err != nil && strings.Contains(err.Error(), "vvvvvvvv") {
			t.Errorf("%s: the message repeats the value", c.name)
		}
	}

	// Together: nine variables of 120,000 bytes each are over MaxEnvTotal, eight are not.
	many := &Pipeline{}
	over := map[string]json.RawMessage{}
	for i := range 9 {
		name := fmt.Sprintf("V%d", i)
		many.Variables = append(many.Variables, Variable{Name: name})
		over[name] = str(strings.Repeat("y", 120000+i))
	}
	_, err := ResolveVariables(many, over)
	var verr *VariableError
	if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Key != "V8" || !strings.Contains(verr.Problems[0].Message, "V8 is the largest") {
		t.Errorf("nine large variables: %v, want one problem naming the largest, V8", err)
	}
	delete(over, "V8")
	if _, err := ResolveVariables(many, over); err != nil {
		t.Errorf("eight large variables: %v", err)
	}
}
