package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/webhook"
)

// maxCachedPrograms bounds the compiled CEL programs kept; past it the cache starts over.
const maxCachedPrograms = 1000

// programs compiles CEL expressions in flowd's environment and keeps them by their text, so a
// busy webhook does not compile its rules at every delivery. The zero value is ready to use.
type programs struct {
	once  sync.Once
	env   *rules.Env
	err   error
	mu    sync.Mutex
	cache map[string]*rules.Program
}

// compile returns the program of expr; its error is a *rules.Error for an expression that does
// not compile.
func (c *programs) compile(expr string) (*rules.Program, error) {
	c.once.Do(func() { c.env, c.err = rules.NewEnv() })
	if c.err != nil {
		return nil, c.err
	}
	c.mu.Lock()
	prg, ok := c.cache[expr]
	c.mu.Unlock()
	if ok {
		return prg, nil
	}
	prg, err := c.env.Compile(expr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.cache == nil || len(c.cache) >= maxCachedPrograms {
		c.cache = map[string]*rules.Program{}
	}
	c.cache[expr] = prg
	c.mu.Unlock()
	return prg, nil
}

// hasRules reports whether def has CEL rules for payloads (webhook.filter or webhook.variables).
func hasRules(def *pipeline.Pipeline) bool {
	return def.Webhook != nil && (strings.TrimSpace(def.Webhook.Filter) != "" || len(def.Webhook.Variables) > 0)
}

// ruleHeaders is the headers variable of CEL rules: lower-case names to their first value.
func ruleHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}

// ruleBody is the body variable of CEL rules: the body's JSON value, any value (numbers as
// json.Number), read from the payload field of a form-encoded body as DecodePayload reads it;
// a form body without a payload field is the object of its variables (strings), as
// DecodePayload reads them. An empty body is an empty object, as it is for variables.
func ruleBody(contentType string, body []byte) (any, error) {
	data := bytes.TrimSpace(body)
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" &&
		len(data) > 0 && data[0] != '{' && data[0] != '[' && !json.Valid(data) {
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, err
		}
		if _, ok := form["payload"]; !ok {
			return formBody(contentType, body)
		}
		data = bytes.TrimSpace([]byte(form.Get("payload")))
	}
	if len(data) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// formBody is the body variable of CEL rules for a form body of fields: their variables.
func formBody(contentType string, body []byte) (any, error) {
	vars, err := webhook.DecodePayload(contentType, body)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(vars))
	for k, v := range vars {
		out[k] = valueText(v)
	}
	return out, nil
}

// ruleOutcome is what a pipeline's webhook rules made of a delivery.
type ruleOutcome struct {
	Pass   bool              // webhook.filter is true, or there is none
	Values map[string]string // webhook.variables' results by variable name
	Trace  []string          // one line per rule: `webhook.filter = true`, `SERVICE = "api"`
}

// evalRules evaluates def's webhook.filter and then, when it passes, every webhook.variables
// rule over in. A rule that fails (a missing key, a result of the wrong type, the cost limit)
// gives a *pipeline.VariableError with a problem per failed rule (keyed by the variable's name, or
// webhook.filter); ctx's end gives ctx's error. secret names the
// secret variables, whose values the trace masks.
func (c *programs) evalRules(ctx context.Context, def *pipeline.Pipeline, in rules.Input, secret map[string]bool) (*ruleOutcome, error) {
	out := &ruleOutcome{Pass: true, Values: map[string]string{}}
	if def.Webhook == nil {
		return out, nil
	}
	stopped := func(err error) bool {
		return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
	}
	if f := strings.TrimSpace(def.Webhook.Filter); f != "" {
		prg, err := c.compile(f)
		if err != nil {
			return nil, &pipeline.VariableError{Problems: []pipeline.VariableProblem{{Key: "webhook.filter", Message: "does not compile: " + err.Error()}}}
		}
		ok, err := prg.Filter(ctx, in)
		if err != nil {
			if stopped(err) {
				return nil, ctx.Err()
			}
			return nil, &pipeline.VariableError{Problems: []pipeline.VariableProblem{{Key: "webhook.filter", Message: err.Error()}}}
		}
		out.Trace = append(out.Trace, fmt.Sprintf("webhook.filter = %v", ok))
		if !ok {
			out.Pass = false
			return out, nil
		}
	}
	var probs []pipeline.VariableProblem
	for _, v := range def.Webhook.Variables {
		prg, err := c.compile(v.Expr)
		if err != nil {
			probs = append(probs, pipeline.VariableProblem{Key: v.Name, Message: "webhook.variables." + v.Name + " does not compile: " + err.Error()})
			continue
		}
		val, err := prg.Named(v.Name).Value(ctx, in)
		if err != nil {
			if stopped(err) {
				return nil, ctx.Err()
			}
			probs = append(probs, pipeline.VariableProblem{Key: v.Name, Message: err.Error()})
			continue
		}
		out.Values[v.Name] = val
		shown := strconv.Quote(val)
		if secret[v.Name] {
			shown = "***"
		}
		out.Trace = append(out.Trace, fmt.Sprintf("%s = %s", v.Name, shown))
	}
	if len(probs) > 0 {
		return nil, &pipeline.VariableError{Problems: probs}
	}
	return out, nil
}

// mergeRuleValues returns overrides with the rules' values on top: a variable with a rule takes
// the rule's value, whatever the body said (its body key is dropped and named in shadowed).
func mergeRuleValues(overrides map[string]json.RawMessage, values map[string]string) (merged map[string]json.RawMessage, shadowed []string) {
	merged = make(map[string]json.RawMessage, len(overrides)+len(values))
	for k, v := range overrides {
		merged[k] = v
	}
	for k, v := range values {
		if _, ok := merged[k]; ok {
			shadowed = append(shadowed, k)
		}
		merged[k] = mustJSON(v)
	}
	slices.Sort(shadowed)
	return merged, shadowed
}
