package rules

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// alertmanager is an Alertmanager-style payload.
const alertmanager = `{"status":"firing","alerts":[{"labels":{"service":"api","severity":"page"}}]}`

// decode parses a JSON body as the webhook handler does.
func decode(t *testing.T, body string, useNumber bool) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	if useNumber {
		dec.UseNumber()
	}
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// compile compiles expr, failing t on error.
func compile(t *testing.T, expr string) *Program {
	t.Helper()
	p, err := Compile(expr)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return p
}

func TestFilter(t *testing.T) {
	t.Parallel()
	push := map[string]any{"branch": "main", "commit": "abc123"}
	tests := []struct {
		name    string
		expr    string
		in      Input
		want    bool
		wantErr string // substring; "" = no error
	}{
		{"firing", `body.status == "firing"`, Input{Body: alertmanager}, true, ""},
		{"resolved", `body.status == "resolved"`, Input{Body: alertmanager}, false, ""},
		{"severity", `body.alerts.exists(a, a.labels.severity == "page")`, Input{Body: alertmanager}, true, ""},
		{"header", `headers["x-github-event"] == "push"`, Input{Headers: map[string]string{"x-github-event": "push"}}, true, ""},
		{"header other value", `headers["x-github-event"] == "push"`, Input{Headers: map[string]string{"x-github-event": "ping"}}, false, ""},
		{"header names are lower-cased", `headers["x-github-event"] == "push"`, Input{Headers: map[string]string{"X-GitHub-Event": "push"}}, true, ""},
		{"header missing", `headers["x-github-event"] == "push"`, Input{}, false, "webhook.filter: no such key: x-github-event"},
		{"header guarded", `"x-github-event" in headers && headers["x-github-event"] == "push"`, Input{}, false, ""},
		{"event", `event.branch == "main"`, Input{Event: push}, true, ""},
		{"event other branch", `event.branch == "main"`, Input{Event: map[string]any{"branch": "dev"}}, false, ""},
		{"event null", `event.branch == "main"`, Input{}, false, "webhook.filter: no such key: branch"},
		{"event null, has guard", `has(event.branch) && event.branch == "main"`, Input{}, false, ""},
		{"event null, null guard", `event != null && event.branch == "main"`, Input{}, false, ""},
		{"event is null", `event == null`, Input{}, true, ""},
		{"event guarded, present", `has(event.branch) && event.branch == "main"`, Input{Event: push}, true, ""},
		{"missing key", `body.alerts[0].labels.service == "api"`, Input{Body: `{"status":"firing"}`}, false, "webhook.filter: no such key: alerts"},
		{"non-bool string", `body.status`, Input{Body: alertmanager}, false, "webhook.filter must be true or false, got string"},
		{"non-bool list", `body.alerts`, Input{Body: alertmanager}, false, "webhook.filter must be true or false, got list"},
		{"non-bool null", `body.nothing`, Input{Body: `{"nothing":null}`}, false, "webhook.filter must be true or false, got null"},
		{"body not an object", `body == 1`, Input{Body: `1`}, true, ""},
		{"string extensions", `body.ref.startsWith("refs/heads/") && body.ref.split("/")[2] == "main"`, Input{Body: `{"ref":"refs/heads/main"}`}, true, ""},
		{"optional", `body.?alerts[0].labels.severity.orValue("none") == "none"`, Input{Body: `{}`}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.in
			if s, ok := in.Body.(string); ok {
				in.Body = decode(t, s, false)
			}
			got, err := compile(t, tt.expr).Filter(context.Background(), in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Filter = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Filter = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestFilterResultError(t *testing.T) {
	t.Parallel()
	_, err := compile(t, `"yes"`).Filter(context.Background(), Input{})
	var rerr *ResultError
	if !errors.As(err, &rerr) {
		t.Fatalf("error = %v (%T), want *ResultError", err, err)
	}
	want := ResultError{Rule: "webhook.filter", Want: "be true or false", Got: "string"}
	if *rerr != want {
		t.Errorf("error = %#v, want %#v", *rerr, want)
	}
}

func TestValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expr      string
		body      string
		useNumber bool
		want      string
	}{
		{"string", `body.alerts[0].labels.service`, alertmanager, false, "api"},
		{"size", `size(body.alerts)`, alertmanager, false, "1"},
		{"bool", `body.alerts[0].labels.severity == "page"`, alertmanager, false, "true"},
		{"false", `body.status == "resolved"`, alertmanager, false, "false"},
		{"whole double", `body.n`, `{"n":3}`, false, "3"},
		{"fraction", `body.n`, `{"n":1.5}`, false, "1.5"},
		{"big double without exponent", `body.n`, `{"n":1e21}`, false, "1000000000000000000000"},
		{"small double without exponent", `body.n`, `{"n":0.000001}`, false, "0.000001"},
		{"negative zero", `body.n`, `{"n":-0.0}`, false, "0"},
		{"double arithmetic", `body.n * 2.0`, `{"n":0.75}`, false, "1.5"},
		{"json.Number int", `body.id`, `{"id":9007199254740993}`, true, "9007199254740993"},
		{"json.Number double", `body.n`, `{"n":2.50}`, true, "2.5"},
		{"json.Number compares as int", `body.alerts[0].n == 2 && body.alerts[0].n + 1 == 3`, `{"alerts":[{"n":2}]}`, true, "true"},
		{"json.Number beyond int64", `body.n`, `{"n":18446744073709551615}`, true, "18446744073709551615"},
		{"json.Number beyond uint64", `body.n`, `{"n":18446744073709551616}`, true, "18446744073709552000"},
		{"int", `7 - 10`, `{}`, false, "-3"},
		{"uint", `7u`, `{}`, false, "7"},
		{"string as is", `body.s`, `{"s":" spaced\nand \"quoted\" "}`, false, " spaced\nand \"quoted\" "},
		{"concatenation", `body.a + "-" + string(size(body.b))`, `{"a":"x","b":[1,2]}`, false, "x-2"},
		{"header", `headers["x-gitlab-event"]`, `{}`, false, "Push Hook"},
		{"event", `event.branch`, `{}`, false, "main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := Input{
				Body:    decode(t, tt.body, tt.useNumber),
				Headers: map[string]string{"x-gitlab-event": "Push Hook"},
				Event:   map[string]any{"branch": "main"},
			}
			got, err := compile(t, tt.expr).Named("X").Value(context.Background(), in)
			if err != nil || got != tt.want {
				t.Fatalf("Value = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestValueResultError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, got string
	}{
		{`body.alerts`, "list"},
		{`body.alerts[0]`, "map"},
		{`body.nothing`, "null"},
		{`event`, "null"},
		{`headers`, "map"},
		{`b"abc"`, "bytes"},
		{`timestamp("2024-01-01T00:00:00Z")`, "timestamp"},
		{`duration("90s")`, "duration"},
		{`body.?alerts`, "optional"},
		{`type(1)`, "type"},
		{`1.0 / 0.0`, "double +Inf"},
	}
	body := decode(t, `{"nothing":null,"alerts":[{"labels":{}}]}`, false)
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			got, err := compile(t, tt.expr).Named("X").Value(context.Background(), Input{Body: body})
			var rerr *ResultError
			if !errors.As(err, &rerr) {
				t.Fatalf("Value = %q, %v (%T); want *ResultError", got, err, err)
			}
			if rerr.Got != tt.got {
				t.Errorf("Got = %q, want %q", rerr.Got, tt.got)
			}
			if want := "webhook.variables.X must give a string, number or bool, got " + tt.got; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}

func TestValueErrors(t *testing.T) {
	t.Parallel()
	body := decode(t, `{"status":"firing"}`, false)
	tests := []struct {
		name, expr string
		program    func(*Program) *Program
		want       string
	}{
		{"missing key, named", `body.alerts[0].labels.service`, func(p *Program) *Program { return p.Named("SERVICE") }, "webhook.variables.SERVICE: no such key: alerts"},
		{"missing key, unnamed", `body.alerts[0].labels.service`, func(p *Program) *Program { return p }, "webhook variable: no such key: alerts"},
		{"index out of range", `body.status.split("")[99]`, func(p *Program) *Program { return p.Named("S") }, "webhook.variables.S: index out of bounds: 99"},
		{"unnamed result", `[1]`, func(p *Program) *Program { return p }, "webhook variable must give a string, number or bool, got list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.program(compile(t, tt.expr)).Value(context.Background(), Input{Body: body})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Value = %q, %v; want error %q", got, err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want string // Error() of the *Error; "" = valid
	}{
		{`body.status == "firing"`, ""},
		{`headers["x-github-event"] == "push" && has(event.branch)`, ""},
		{`body.alerts.map(a, a.labels.service).join(",")`, ""},
		{`bodyy.status`, "1:1: undeclared reference to 'bodyy'"},
		{`body.status == statuss`, "1:16: undeclared reference to 'statuss'"},
		{"body.a &&\n  bodyy.b", "2:3: undeclared reference to 'bodyy'"},
		{`body.status ==`, "1:15: Syntax error: mismatched input '<EOF>'"},
		{`body.`, "1:6: Syntax error: no viable alternative at input '.'"},
		{`"é" + bodyy`, "1:7: undeclared reference to 'bodyy'"}, // columns count characters
		{`x + y`, "1:1: undeclared reference to 'x' (and 1 more problem)"},
		{`"a" + 1`, "1:5: found no matching overload for '_+_' applied to '(string, int)'"},
		{`headers["a"] + 1`, "1:14: found no matching overload for '_+_' applied to '(string, int)'"},
		{``, "1:1: Syntax error: mismatched input '<EOF>'"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			err := Check(tt.expr)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Check = %v (%T), want *Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Check = %q, want it to start with %q", err, tt.want)
			}
			if _, err := Compile(tt.expr); err == nil || err.Error() != cerr.Error() {
				t.Errorf("Compile error = %v, want Check's %v", err, cerr)
			}
		})
	}
}

func TestCheckFilterAndValue(t *testing.T) {
	t.Parallel()
	env, err := NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr          string
		filter, value string // error text, "" = accepted
	}{
		{`body.status == "firing"`, "", ""},
		{`body.status`, "", ""}, // dyn: known at evaluation only
		{`"firing"`, "1:1: must be true or false, got string", ""},
		{`size(body)`, "1:1: must be true or false, got int", ""},
		{`1.5`, "1:1: must be true or false, got double", ""},
		{`[true]`, "1:1: must be true or false, got list", "1:1: must give a string, number or bool, got list"},
		{`{"a": 1}`, "1:1: must be true or false, got map", "1:1: must give a string, number or bool, got map"},
		{`null`, "1:1: must be true or false, got null", "1:1: must give a string, number or bool, got null"},
		{`bodyy`, "1:1: undeclared reference to 'bodyy'", "1:1: undeclared reference to 'bodyy'"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				what string
				err  error
				want string
			}{{"CheckFilter", env.CheckFilter(tt.expr), tt.filter}, {"CheckValue", env.CheckValue(tt.expr), tt.value}} {
				switch {
				case c.want == "" && c.err != nil:
					t.Errorf("%s = %v, want nil", c.what, c.err)
				case c.want != "" && (c.err == nil || c.err.Error() != c.want):
					t.Errorf("%s = %v, want %q", c.what, c.err, c.want)
				}
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	t.Parallel()
	items := make([]any, 20_000)
	for i := range items {
		items[i] = float64(i)
	}
	small := make([]any, 1_000)
	copy(small, items)
	tests := []struct {
		name, expr string
		body       any
	}{
		{"big all", `body.items.all(x, x >= 0.0)`, map[string]any{"items": items}},
		{"big map", `size(body.items.map(x, x * 2.0)) > 0`, map[string]any{"items": items}},
		{"nested comprehensions", `body.items.all(x, body.items.all(y, x != y || x == y))`, map[string]any{"items": small}},
		{"nested over literals", `[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			got, err := compile(t, tt.expr).Filter(context.Background(), Input{Body: tt.body})
			if !errors.Is(err, ErrCostLimit) {
				t.Fatalf("Filter = %v, %v; want ErrCostLimit", got, err)
			}
			if !strings.HasPrefix(err.Error(), "webhook.filter: evaluation cost limit exceeded") {
				t.Errorf("error = %q", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// The same kind of rule over a payload of ordinary size stays within the limit.
	if ok, err := compile(t, `body.items.all(x, x >= 0.0)`).Filter(context.Background(), Input{Body: map[string]any{"items": small}}); err != nil || !ok {
		t.Errorf("Filter over 1000 items = %v, %v; want true", ok, err)
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	t.Run("canceled before", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := compile(t, `true`).Filter(ctx, Input{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Filter error = %v, want context.Canceled", err)
		}
		if _, err := compile(t, `"x"`).Value(ctx, Input{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Value error = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline during evaluation", func(t *testing.T) {
		t.Parallel()
		env, err := NewEnv()
		if err != nil {
			t.Fatal(err)
		}
		env.costLimit = math.MaxUint64 // so that only the context can stop it
		items := make([]any, 100_000)
		for i := range items {
			items[i] = float64(i)
		}
		prg, err := env.Compile(`body.all(x, body.all(y, x != y || x == y))`) // 10^10 iterations
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = prg.Filter(ctx, Input{Body: items})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Filter error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Filter returned %v after the deadline", d)
		}
	})
	t.Run("time limit", func(t *testing.T) {
		t.Parallel()
		env, err := NewEnv()
		if err != nil {
			t.Fatal(err)
		}
		env.costLimit = math.MaxUint64 // so that only the time limit can stop it
		prg, err := env.Compile(`body.all(x, body.all(y, x != y || x == y))`)
		if err != nil {
			t.Fatal(err)
		}
		prg.maxTime = 50 * time.Millisecond
		items := make([]any, 100_000)
		for i := range items {
			items[i] = float64(i)
		}
		_, err = prg.Named("X").Value(context.Background(), Input{Body: items})
		if !errors.Is(err, ErrCostLimit) || !strings.Contains(err.Error(), "stopped after 50ms") {
			t.Fatalf("Value error = %v, want ErrCostLimit stopped after 50ms", err)
		}
	})
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	plain := map[string]any{"a": []any{"x", 1.0}, "b": true}
	if got := normalize(plain); !sameMap(got, plain) {
		t.Errorf("normalize copied a value without json.Number")
	}
	withNumber := map[string]any{"keep": []any{"x"}, "n": []any{json.Number("1"), json.Number("1.5")}}
	got := normalize(withNumber).(map[string]any)
	if withNumber["n"].([]any)[0] != json.Number("1") {
		t.Errorf("normalize changed its input")
	}
	n := got["n"].([]any)
	if n[0] != int64(1) || n[1] != 1.5 {
		t.Errorf("normalized numbers = %#v, want int64(1), 1.5", n)
	}
}

// sameMap reports whether a is the very map b.
func sameMap(a any, b map[string]any) bool {
	m, ok := a.(map[string]any)
	if !ok {
		return false
	}
	m["__probe"] = true
	defer delete(m, "__probe")
	_, same := b["__probe"]
	return same
}

func TestProgramConcurrentUse(t *testing.T) {
	t.Parallel()
	env, err := NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	prg, err := env.Compile(`body.alerts[0].labels.service`)
	if err != nil {
		t.Fatal(err)
	}
	prg = prg.Named("SERVICE")
	body := decode(t, alertmanager, false)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 100 {
				if v, err := prg.Value(context.Background(), Input{Body: body}); err != nil || v != "api" {
					errs <- errors.New("got " + v)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
