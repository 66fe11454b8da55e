package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Resolved is the variables a run gets.
type Resolved struct {
	Values  map[string]string // every declared variable: default or override
	Ignored []string          // undeclared keys, sorted
}

// VariableError lists every bad override; Error() names each key.
type VariableError struct {
	Problems []VariableProblem // sorted by key
}

// VariableProblem is one bad override.
type VariableProblem struct{ Key, Message string }

// Error implements error: "invalid variables: KEY: message; KEY2: message".
func (e *VariableError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Key + ": " + p.Message
	}
	return "invalid variables: " + strings.Join(parts, "; ")
}

// ResolveVariables applies JSON overrides to the declared defaults with the rules of DESIGN.md's
// webhook table: strings as they are; numbers and booleans as their JSON text (exactly as sent,
// e.g. `1.50` stays "1.50"); an object, array or null for a declared variable is a problem; a value
// outside the variable's Options is a problem; a reserved key (FLOWD_*, PATH, HOME) is a problem
// even when undeclared; other undeclared keys are ignored and listed in Ignored. All problems are
// reported at once, as a *VariableError with a nil *Resolved.
func ResolveVariables(p *Pipeline, overrides map[string]json.RawMessage) (*Resolved, error) {
	r := &Resolved{Values: map[string]string{}, Ignored: []string{}}
	var vars []Variable
	if p != nil {
		vars = p.Variables
	}
	for _, v := range vars {
		r.Values[v.Name] = v.Default
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var probs []VariableProblem
	for _, key := range keys {
		if Reserved(key) {
			probs = append(probs, VariableProblem{Key: key, Message: "reserved name: FLOWD_*, PATH and HOME are set by flowd"})
			continue
		}
		i := slices.IndexFunc(vars, func(v Variable) bool { return v.Name == key })
		if i < 0 {
			r.Ignored = append(r.Ignored, key)
			continue
		}
		val, msg := jsonText(overrides[key])
		if msg != "" {
			probs = append(probs, VariableProblem{Key: key, Message: msg})
			continue
		}
		if opts := vars[i].Options; len(opts) > 0 && !slices.Contains(opts, val) {
			probs = append(probs, VariableProblem{Key: key, Message: "value " + strconv.Quote(val) + " is not one of the options (" + strings.Join(opts, ", ") + ")"})
			continue
		}
		r.Values[key] = val
	}
	if len(probs) == 0 {
		probs = envProblems(vars, r.Values)
	}
	if len(probs) > 0 {
		return nil, &VariableError{Problems: probs}
	}
	return r, nil
}

// Limits of a run's environment. Variables reach a step only as environment entries NAME=value,
// and Linux refuses to start a process (E2BIG, "argument list too long") when one entry is
// over MAX_ARG_STRLEN (32 pages: 131,072 bytes with its terminating NUL) or when arguments and
// environment together are over ARG_MAX (a quarter of the stack limit: 2 MiB by default).
const (
	// MaxEnvEntry is the longest entry NAME=value, in bytes (MAX_ARG_STRLEN without the NUL).
	MaxEnvEntry = 131072 - 1
	// MaxEnvTotal bounds the run's variables together: each entry, its NUL and its pointer. It
	// is half of the default ARG_MAX, leaving the other half for the job's env, flowd's
	// built-ins, PATH, HOME and the step's script.
	MaxEnvTotal = 1 << 20
)

// envProblems are the values that can never reach a process: one with a NUL byte (an
// environment entry ends at the first one), an entry over MaxEnvEntry, and variables together
// over MaxEnvTotal (named by the largest). Defaults are checked too: they would fail every run.
func envProblems(vars []Variable, values map[string]string) []VariableProblem {
	var probs []VariableProblem
	total, largest, largestSize := 0, "", 0
	for _, v := range vars {
		val := values[v.Name]
		size := len(v.Name) + 1 + len(val)
		switch {
		case strings.IndexByte(val, 0) >= 0:
			probs = append(probs, VariableProblem{Key: v.Name, Message: fmt.Sprintf(
				"the value has a NUL byte (at byte %d), which no process environment can hold: send the value without it", strings.IndexByte(val, 0))})
		case size > MaxEnvEntry:
			probs = append(probs, VariableProblem{Key: v.Name, Message: fmt.Sprintf(
				"%s=value is %d bytes, over the %d bytes one environment entry may have (Linux MAX_ARG_STRLEN); pass large data by reference instead (a URL or a path the step fetches)", v.Name, size, MaxEnvEntry)})
		}
		total += size + 1 + 8
		if size > largestSize {
			largest, largestSize = v.Name, size
		}
	}
	if len(probs) == 0 && total > MaxEnvTotal {
		probs = append(probs, VariableProblem{Key: largest, Message: fmt.Sprintf(
			"the run's variables take %d bytes of environment, over the limit of %d (half of Linux's usual ARG_MAX, the rest is for the job's env and script); %s is the largest at %d bytes: pass large data by reference instead (a URL or a path the step fetches)", total, MaxEnvTotal, largest, largestSize)})
	}
	slices.SortFunc(probs, func(a, b VariableProblem) int { return strings.Compare(a.Key, b.Key) })
	return probs
}

// jsonText returns the variable value a JSON value stands for, or a message saying why it cannot
// be one.
func jsonText(raw json.RawMessage) (string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", "no value given"
	}
	if !json.Valid(raw) {
		return "", "not valid JSON"
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", "not valid JSON"
		}
		return s, ""
	case '{':
		return "", "must be a string, number or boolean, not an object"
	case '[':
		return "", "must be a string, number or boolean, not an array"
	case 'n':
		return "", "must be a string, number or boolean, not null"
	}
	return string(raw), "" // number, true or false, as sent
}
