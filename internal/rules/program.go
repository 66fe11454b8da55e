package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Input is what an expression sees.
type Input struct {
	// Body is the parsed JSON body, any JSON value as encoding/json decodes it into an any
	// (map[string]any, []any, string, float64 or json.Number, bool, nil).
	Body any
	// Headers maps lower-case header names to their first value; nil is no headers. Names are
	// lower-cased here too, so a map built from an http.Header works as well.
	Headers map[string]string
	// Event is the parsed Git event as a map, or nil (null) when the request is not from a Git
	// host.
	Event map[string]any
}

// Program is a compiled expression, ready to evaluate. It is safe for concurrent use.
type Program struct {
	prg     cel.Program
	rule    string        // names the rule in Value's errors
	maxTime time.Duration // MaxEvalTime; tests change it
}

// Compile returns a Program for expr; its compile error is an *Error.
func (e *Env) Compile(expr string) (*Program, error) {
	ast, err := e.check(expr)
	if err != nil {
		return nil, err
	}
	prg, err := e.env.Program(ast,
		cel.CostLimit(e.costLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		return nil, &Error{Line: 1, Column: 1, Message: err.Error()}
	}
	return &Program{prg: prg, rule: "webhook variable", maxTime: MaxEvalTime}, nil
}

// Named returns a copy of p whose Value errors name the variable it sets:
// "webhook.variables.NAME …". Without it they say "webhook variable …".
func (p *Program) Named(variable string) *Program {
	c := *p
	c.rule = "webhook.variables." + variable
	return &c
}

// ResultError is an expression whose result has the wrong type; the caller answers 422.
type ResultError struct {
	Rule string // "webhook.filter" or "webhook.variables.NAME"
	Want string // "be true or false" or "give a string, number or bool"
	Got  string // the result's type: "string", "list", "map", "null", "bytes", "timestamp"…
}

// Error implements error: "webhook.variables.X must give a string, number or bool, got list".
func (e *ResultError) Error() string {
	return e.Rule + " must " + e.Want + ", got " + e.Got
}

// Filter evaluates p as webhook.filter. A result other than a bool is a *ResultError ("webhook.filter
// must be true or false, got string"); other errors are prefixed "webhook.filter: ".
func (p *Program) Filter(ctx context.Context, in Input) (bool, error) {
	const rule = "webhook.filter"
	v, err := p.eval(ctx, in)
	if err != nil {
		return false, fmt.Errorf("%s: %w", rule, err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, &ResultError{Rule: rule, Want: "be true or false", Got: valueType(v)}
	}
	return bool(b), nil
}

// Value evaluates p as a webhook variable and returns the variable's value: a string as it is; an
// int, uint or double as its decimal text (3.0 gives "3", 1.5 gives "1.5", never an exponent); a
// bool as "true" or "false". Any other result (list, map, null, bytes, timestamp…, or a double
// that is NaN or infinite) is a *ResultError; other errors are prefixed with the rule's name (see
// Named).
func (p *Program) Value(ctx context.Context, in Input) (string, error) {
	v, err := p.eval(ctx, in)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.rule, err)
	}
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Int:
		return strconv.FormatInt(int64(v), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "", &ResultError{Rule: p.rule, Want: "give a string, number or bool", Got: "double " + strconv.FormatFloat(f, 'f', -1, 64)}
		}
		if f == 0 {
			f = 0 // -0 gives "0"
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	case types.Bool:
		return strconv.FormatBool(bool(v)), nil
	}
	return "", &ResultError{Rule: p.rule, Want: "give a string, number or bool", Got: valueType(v)}
}

// eval runs p over in. Evaluation errors keep CEL's message ("no such key: alerts"); a stop by the
// cost limit wraps ErrCostLimit, a stop by ctx wraps ctx's error.
func (p *Program) eval(ctx context.Context, in Input) (ref.Val, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluation stopped: %w", context.Cause(ctx))
	}
	headers := lowerKeys(in.Headers)
	var event any // a nil map[string]any would be an empty map, not null
	if in.Event != nil {
		event = normalize(in.Event)
	}
	vars := map[string]any{
		"body":    normalize(in.Body),
		"headers": headers,
		"event":   event,
	}
	evalCtx, cancel := context.WithTimeout(ctx, p.maxTime)
	defer cancel()
	out, _, err := p.prg.ContextEval(evalCtx, vars)
	if err != nil {
		var stop interpreter.EvalCancelledError
		switch {
		case errors.As(err, &stop) && stop.Cause == interpreter.CostLimitExceeded:
			return nil, ErrCostLimit
		case ctx.Err() != nil:
			return nil, fmt.Errorf("evaluation stopped: %w", context.Cause(ctx))
		case evalCtx.Err() != nil:
			return nil, fmt.Errorf("%w (stopped after %v)", ErrCostLimit, p.maxTime)
		}
		return nil, err
	}
	return out, nil
}

// lowerKeys returns h with lower-case keys (h itself when they are already), never nil. Of keys
// that differ only in case, the lexically smallest original wins, so the result is deterministic.
func lowerKeys(h map[string]string) map[string]string {
	lower := true
	for k := range h {
		if strings.ToLower(k) != k {
			lower = false
			break
		}
	}
	switch {
	case h == nil:
		return map[string]string{}
	case lower:
		return h
	}
	out := make(map[string]string, len(h))
	keys := slices.Sorted(maps.Keys(h))
	for i := len(keys) - 1; i >= 0; i-- {
		out[strings.ToLower(keys[i])] = h[keys[i]]
	}
	return out
}

// normalize returns v with every json.Number replaced by an int64 or uint64 (when it is a whole
// number that fits) or a float64, copying only the maps and lists that hold one. Other values are left to
// CEL's type adapter.
func normalize(v any) any {
	out, _ := normalized(v)
	return out
}

// normalized is normalize that also reports whether it changed anything.
func normalized(v any) (any, bool) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return u, true
		}
		if f, err := v.Float64(); err == nil {
			return f, true
		}
		return string(v), true
	case map[string]any:
		var c map[string]any
		for k, e := range v {
			if n, changed := normalized(e); changed {
				if c == nil {
					c = make(map[string]any, len(v))
					for k2, e2 := range v {
						c[k2] = e2
					}
				}
				c[k] = n
			}
		}
		if c == nil {
			return v, false
		}
		return c, true
	case []any:
		var c []any
		for i, e := range v {
			if n, changed := normalized(e); changed {
				if c == nil {
					c = make([]any, len(v))
					copy(c, v)
				}
				c[i] = n
			}
		}
		if c == nil {
			return v, false
		}
		return c, true
	}
	return v, false
}

// valueType names the type of a CEL value for people: "list", "map", "null", "timestamp"…
func valueType(v ref.Val) string {
	switch v.Type() {
	case types.NullType:
		return "null"
	case types.ListType:
		return "list"
	case types.MapType:
		return "map"
	case types.TimestampType:
		return "timestamp"
	case types.DurationType:
		return "duration"
	case types.OptionalType:
		return "optional"
	}
	return v.Type().TypeName()
}
