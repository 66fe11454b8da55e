package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseWebhookExpressions checks that webhook.filter and webhook.variables are compiled at
// parse time, and that a problem in an expression is reported at its character in the YAML.
func TestParseWebhookExpressions(t *testing.T) {
	t.Parallel()
	// withWebhook declares SERVICE and appends the webhook block w (indented by two spaces).
	withWebhook := func(w string) string {
		return "variables: {SERVICE: x}\nwebhook:\n" + w + minimal
	}
	const eof = "Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"
	tests := []struct {
		name string
		src  string
		want []string // nil = valid
	}{
		{"valid filter and variables", withWebhook("  filter: 'body.status == \"firing\" && has(body.alerts)'\n  variables:\n    SERVICE: body.alerts[0].labels.service\n"), nil},
		{"valid header and event rules", withWebhook("  filter: '\"x-github-event\" in headers && headers[\"x-github-event\"] == \"push\" && has(event.branch)'\n  variables:\n    SERVICE: 'event != null ? event.branch : \"none\"'\n"), nil},
		{"valid block scalar", withWebhook("  filter: |\n    body.status == \"firing\" &&\n      size(body.alerts) > 0\n"), nil},
		{"dyn result passes", withWebhook("  filter: body.status\n  variables:\n    SERVICE: body.alerts\n"), nil},
		{"empty filter is no filter", withWebhook("  filter: ''\n"), nil},
		{"null filter is no filter", withWebhook("  filter:\n"), nil},
		{"plain", withWebhook("  filter: bodyy.status == 1\n"), []string{"3:11: webhook.filter: undeclared reference to 'bodyy'"}},
		{"single-quoted", withWebhook("  filter: 'bodyy.status == \"firing\"'\n"), []string{"3:12: webhook.filter: undeclared reference to 'bodyy'"}},
		{"single-quoted with doubled quotes", withWebhook("  filter: 'body.status == ''x'' && bodyy'\n"), []string{"3:36: webhook.filter: undeclared reference to 'bodyy'"}},
		{"double-quoted with escapes", withWebhook("  filter: \"body.status == \\\"x\\\" && bodyy\"\n"), []string{"3:36: webhook.filter: undeclared reference to 'bodyy'"}},
		{"double-quoted with a unicode escape", withWebhook("  filter: \"'\\u00e9' == bodyy\"\n"), []string{"3:24: webhook.filter: undeclared reference to 'bodyy'"}},
		{"characters, not bytes", withWebhook("  filter: '\"éé\" == bodyy'\n"), []string{"3:20: webhook.filter: undeclared reference to 'bodyy'"}},
		{"anchor and tag", withWebhook("  filter: &f !!str bodyy\n"), []string{"3:20: webhook.filter: undeclared reference to 'bodyy'"}},
		{"literal block", withWebhook("  filter: |\n    body.status == 'x' &&\n      bodyy\n"), []string{"5:7: webhook.filter: undeclared reference to 'bodyy'"}},
		{"folded block: at the scalar", withWebhook("  filter: >-\n    body.status == 'x' &&\n    bodyy\n"), []string{"3:11: webhook.filter: undeclared reference to 'bodyy' (at column 23 of the expression)"}},
		{"plain over two lines: at the scalar", withWebhook("  filter: body.status == 'x' &&\n    bodyy\n"), []string{"3:11: webhook.filter: undeclared reference to 'bodyy' (at column 23 of the expression)"}},
		{"syntax error at the end", withWebhook("  filter: body.status ==\n"), []string{"3:25: webhook.filter: " + eof}},
		{"syntax error in the middle", withWebhook("  filter: 'body. == 1'\n"), []string{"3:18: webhook.filter: Syntax error: no viable alternative at input '. =='"}},
		{"filter of another type", withWebhook("  filter: size(body.alerts)\n"), []string{"3:11: webhook.filter: must be true or false, got int"}},
		{"variable", withWebhook("  variables:\n    SERVICE: 'bodyy.alerts[0].labels.service'\n"), []string{"4:15: webhook.variables.SERVICE: undeclared reference to 'bodyy'"}},
		{"variable of another type", withWebhook("  variables:\n    SERVICE: '[body.a]'\n"), []string{"4:15: webhook.variables.SERVICE: must give a string, number or bool, got list"}},
		{"variable type error", withWebhook("  variables:\n    SERVICE: body.a + 1 + \"x\"\n"), []string{"4:25: webhook.variables.SERVICE: found no matching overload for '_+_' applied to '(int, string)'"}},
		{"every expression is checked", withWebhook("  filter: bodyy\n  variables:\n    SERVICE: x.y\n    OTHER: ok\n"), []string{
			"3:11: webhook.filter: undeclared reference to 'bodyy'",
			"5:14: webhook.variables.SERVICE: undeclared reference to 'x'",
			`6:5: webhook.variables.OTHER: "OTHER" is not a declared variable: declare it under variables`,
			"6:12: webhook.variables.OTHER: undeclared reference to 'ok'",
		}},
		{"blank variable is not compiled", withWebhook("  variables:\n    SERVICE: ' '\n"), []string{"4:5: webhook.variables.SERVICE: expression is required"}},
		{"CRLF line breaks", strings.ReplaceAll(withWebhook("  filter: 'body.a && bodyy'\n"), "\n", "\r\n"), []string{"3:22: webhook.filter: undeclared reference to 'bodyy'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.src))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if p.Webhook == nil {
					t.Fatalf("Parse lost the webhook block")
				}
				return
			}
			if p != nil {
				t.Errorf("Parse returned a pipeline with an error")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParseWebhookExpressionsKept checks that checked expressions are kept as written.
func TestParseWebhookExpressionsKept(t *testing.T) {
	t.Parallel()
	src := "variables: {SERVICE: x}\nwebhook:\n  filter: |\n    body.status == \"firing\"\n  variables:\n    SERVICE: \"body.alerts[0].labels['service']\"\n" + minimal
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Webhook{Filter: "body.status == \"firing\"\n", Variables: []WebhookVariable{{Name: "SERVICE", Expr: "body.alerts[0].labels['service']"}}}
	if !reflect.DeepEqual(p.Webhook, want) {
		t.Errorf("webhook = %#v, want %#v", p.Webhook, want)
	}
}
