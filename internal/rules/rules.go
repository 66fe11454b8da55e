// Package rules compiles and evaluates the CEL expressions of a pipeline's webhook block
// (webhook.filter and webhook.variables, see DESIGN.md) over any webhook payload. It does no I/O
// and keeps no package-level state.
//
// An expression sees three variables:
//
//   - body: the parsed JSON body, any JSON value (objects are maps, arrays are lists, numbers are
//     doubles, or ints when decoded with json.Decoder.UseNumber and whole);
//   - headers: the request's headers, lower-case names to their first value;
//   - event: the parsed Git event as a map, or null when the request is not from a Git host.
//
// Besides CEL's standard library, the environment has the string extensions (split, replace,
// lowerAscii, trim, join, …) and optional values (body.?alerts[0].orValue({})).
//
// A missing key is an evaluation error ("no such key: alerts"), never false or "". Guard keys
// that a payload may lack:
//
//	has(body.alerts) && size(body.alerts) > 0 && body.alerts[0].labels.service == "api"
//	"x-github-event" in headers && headers["x-github-event"] == "push"
//	has(event.branch) && event.branch == "main"   (false, not an error, when event is null)
//	event != null && event.branch == "main"
//
// && and || ignore an erroring side when the other side decides the result, so a guard may come
// first or last.
//
// Evaluation is bounded: every evaluation is cost-limited (MaxCost), time-limited (MaxEvalTime)
// and stops when its context ends.
package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// MaxCost is the cost limit of one evaluation, in CEL's cost units (about one per operation and
// per element a comprehension visits). It lets a rule look through payloads of thousands of
// elements and stops a runaway one (nested comprehensions over a large list).
const MaxCost = 100_000

// MaxEvalTime bounds the wall-clock time of one evaluation, as a backstop to MaxCost: cel-go's
// cost tracker itself grows quadratically with the iterations of a comprehension (about 0.5 s
// for 30,000 iterations), so a rule such as body.filter(x, …) over a list of 80,000 items, which
// MaxCost lets through, would take seconds.
const MaxEvalTime = time.Second

// interruptEvery is how many comprehension iterations run between two checks of the context.
const interruptEvery = 100

// Env is flowd's CEL environment. It is safe for concurrent use; build it once with NewEnv and
// reuse it to save its construction (about a millisecond) per expression. The package-level Check
// and Compile build one per call.
type Env struct {
	env       *cel.Env
	costLimit uint64 // MaxCost; tests raise it
}

// NewEnv returns flowd's CEL environment. Its error means a broken build, not bad input.
func NewEnv() (*Env, error) {
	env, err := cel.NewEnv(
		cel.Variable("body", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("event", cel.DynType),
		ext.Strings(),
		cel.OptionalTypes(),
	)
	if err != nil {
		return nil, fmt.Errorf("rules: new env: %w", err)
	}
	return &Env{env: env, costLimit: MaxCost}, nil
}

// Error is an expression that does not compile. Line and Column are 1-based and count characters
// (not bytes) inside the expression; an error CEL gives no position for (say, an empty
// expression) is at 1:1. When an expression has several problems, Error is the first and its
// Message says how many more there are.
type Error struct {
	Line, Column int
	Message      string
}

// Error implements error: "line:column: message".
func (e *Error) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message)
}

// Check compiles and type-checks expr in flowd's environment; its error is an *Error.
func Check(expr string) error {
	env, err := NewEnv()
	if err != nil {
		return err
	}
	return env.Check(expr)
}

// Compile returns a Program for expr, ready to evaluate; its compile error is an *Error.
func Compile(expr string) (*Program, error) {
	env, err := NewEnv()
	if err != nil {
		return nil, err
	}
	return env.Compile(expr)
}

// Check compiles and type-checks expr; its error is an *Error.
func (e *Env) Check(expr string) error {
	_, err := e.check(expr)
	return err
}

// CheckFilter is Check, and also rejects an expression whose type is known not to be bool (say,
// `body.status` is fine, `"firing"` is not). The type error is at 1:1.
func (e *Env) CheckFilter(expr string) error {
	ast, err := e.check(expr)
	if err != nil {
		return err
	}
	if t := ast.OutputType(); !t.IsAssignableType(cel.BoolType) {
		return &Error{Line: 1, Column: 1, Message: "must be true or false, got " + typeName(t)}
	}
	return nil
}

// CheckValue is Check, and also rejects an expression whose type is known not to be a string,
// number or bool (say, `body.alerts.map(a, a.labels)`, a list). The type error is at 1:1.
func (e *Env) CheckValue(expr string) error {
	ast, err := e.check(expr)
	if err != nil {
		return err
	}
	t := ast.OutputType()
	for _, ok := range []*cel.Type{cel.StringType, cel.IntType, cel.UintType, cel.DoubleType, cel.BoolType} {
		if t.IsAssignableType(ok) {
			return nil
		}
	}
	return &Error{Line: 1, Column: 1, Message: "must give a string, number or bool, got " + typeName(t)}
}

// check compiles expr and turns its first issue into an *Error.
func (e *Env) check(expr string) (*cel.Ast, error) {
	ast, iss := e.env.Compile(expr)
	if iss == nil || iss.Err() == nil {
		return ast, nil
	}
	errs := iss.Errors()
	if len(errs) == 0 {
		return nil, &Error{Line: 1, Column: 1, Message: iss.Err().Error()}
	}
	first := errs[0]
	out := &Error{Line: 1, Column: 1, Message: strings.TrimSuffix(first.Message, " (in container '')")}
	if loc := first.Location; loc != nil && loc.Line() > 0 && loc.Column() >= 0 {
		out.Line, out.Column = loc.Line(), loc.Column()+1
	}
	if n := len(errs); n > 1 {
		out.Message += fmt.Sprintf(" (and %d more %s)", n-1, plural(n-1, "problem", "problems"))
	}
	return nil, out
}

// plural returns one or many by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// typeName names a CEL type for people: "list", "map", "null", "timestamp"…
func typeName(t *cel.Type) string {
	switch t.Kind() {
	case types.NullTypeKind:
		return "null"
	case types.ListKind:
		return "list"
	case types.MapKind:
		return "map"
	case types.TimestampKind:
		return "timestamp"
	case types.DurationKind:
		return "duration"
	case types.OpaqueKind:
		if t.TypeName() == "optional_type" {
			return "optional"
		}
	}
	return t.TypeName()
}

// ErrCostLimit is the cause of an evaluation stopped by MaxCost or MaxEvalTime (errors.Is).
var ErrCostLimit = errors.New("evaluation cost limit exceeded: the expression does too much work for this payload")
