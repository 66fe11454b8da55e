package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/flowd/flowd/internal/client"
)

func webhookCommands() []command {
	return []command{
		{name: "enable", summary: "enable the webhook of a pipeline and print ready-to-use curl commands", run: (*cli).cmdWebhookEnable},
		{name: "disable", summary: "disable the webhook (its URL answers 404 until enabled again)", run: (*cli).cmdWebhookDisable},
		{name: "rotate", summary: "give the webhook a new URL; the old one stops working", run: (*cli).cmdWebhookRotate},
		{name: "show", summary: "show the webhook: enabled, URL, owner, secret", run: (*cli).cmdWebhookShow},
		{name: "audit", summary: "list who enabled, disabled and rotated the webhook", run: (*cli).cmdWebhookAudit},
		{name: "dry-run", summary: "show what a request would do, without starting a run", run: (*cli).cmdWebhookDryRun},
	}
}

// secretEnv is the environment variable the printed curl commands read the signature secret from.
const secretEnv = "FLOWD_WEBHOOK_SECRET"

func (c *cli) cmdWebhookEnable(ctx context.Context, args []string) int {
	f := newFlags("webhook enable", "flowd webhook enable PIPELINE [--secret S | --secret-stdin | --no-secret] [--require-timestamp[=false]]", `
Enable the webhook trigger of PIPELINE (pipeline admins) and print its URL with curl commands
that start a run. You become the trigger's owner: webhook runs run as you, and stop being
accepted if you lose the developer role. Re-enabling keeps the URL ('flowd webhook rotate'
changes it). With a secret, callers must sign each request's body with HMAC-SHA256 in
X-Hub-Signature-256 (as GitHub does); without a secret flag an existing secret is kept.
Prefer --secret-stdin: a --secret value is visible to other users of the machine.
The printed curl commands also send X-Flowd-Timestamp (the Unix time) and sign
"timestamp.body", which flowd accepts within 5 minutes of its clock; --require-timestamp
makes that mandatory for signed requests other than Git hosts' (replay protection), and
--require-timestamp=false makes it optional again; without the flag the setting is kept.`, 1, 1)
	secret := f.String("secret", "", "require requests signed with secret `S`")
	secretStdin := f.Bool("secret-stdin", false, "read the signature secret from stdin")
	noSecret := f.Bool("no-secret", false, "remove the signature secret: accept unsigned requests")
	requireTS := f.Bool("require-timestamp", false, "signed requests must carry a fresh X-Flowd-Timestamp under the signature")
	cn := f.connFlags()
	pos, code := c.parse(f, args)
	if code >= 0 {
		return code
	}
	secretSet := isSet(f, "secret")
	switch n := countTrue(secretSet, *secretStdin, *noSecret); {
	case n > 1:
		return c.usageError(f, "use only one of --secret, --secret-stdin and --no-secret")
	case secretSet && *secret == "":
		return c.usageError(f, "empty --secret (to remove the secret, use --no-secret)")
	}
	var send *string
	switch {
	case secretSet:
		send = secret
	case *noSecret:
		send = new(string)
	case *secretStdin:
		s, err := c.readAllStdin()
		if err != nil {
			return c.fail(err)
		}
		if s == "" {
			return c.fail(errors.New("empty secret on stdin (to remove the secret, use --no-secret)"))
		}
		send = &s
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
	}
	settings := client.WebhookSettings{Secret: send}
	if isSet(f, "require-timestamp") {
		settings.RequireTimestamp = requireTS
	}
	tr, err := cl.WebhookEnableWith(ctx, pos[0], settings)
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	fmt.Fprintf(w, "webhook of %s enabled; it runs as %s\n", pos[0], dash(tr.EnabledBy))
	c.ownerWarning(w, pos[0], tr)
	if tr.URL == nil {
		fmt.Fprintln(w, "URL: (only admins see the URL)")
		return 0
	}
	fmt.Fprintf(w, "URL: %s\n", *tr.URL)
	var first *client.Variable
	pl, err := cl.PipelineGet(ctx, pos[0])
	if err != nil {
		c.warn("cannot read the variables of %s for the examples: %v", pos[0], err)
	} else if len(pl.Variables) > 0 {
		first = &pl.Variables[0]
	}
	fmt.Fprintln(w)
	if tr.HasSecret {
		fmt.Fprintf(w, "Requests must be signed with the webhook's secret: export %s first\n", secretEnv)
		fmt.Fprintf(w, "(e.g. in bash: read -rs %s && export %s), then:\n", secretEnv, secretEnv)
		if tr.RequireTimestamp {
			fmt.Fprintf(w, "(the webhook requires X-Flowd-Timestamp within 5 minutes of the server's clock: the commands send it)\n")
		}
	}
	switch {
	case first != nil:
		fmt.Fprintln(w, "Start a run with the default variables:")
	case err == nil:
		fmt.Fprintf(w, "Start a run (%s declares no variables):\n", pos[0])
	default:
		fmt.Fprintln(w, "Start a run:")
	}
	fmt.Fprintf(w, "  %s\n", curlCommand(*tr.URL, "{}", tr.HasSecret))
	if first != nil {
		val := sampleValue(*first)
		fmt.Fprintf(w, "Start a run with %s=%s:\n", first.Name, val)
		fmt.Fprintf(w, "  %s\n", curlCommand(*tr.URL, jsonObject(first.Name, val), tr.HasSecret))
	}
	return 0
}

// isSet reports whether the flag name was given, even with an empty value.
func isSet(f *flags, name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// sampleValue is a value for v to show in an example: another of its options than the default
// when it has options, else "456" (or "789" if the default is "456").
func sampleValue(v client.Variable) string {
	for _, o := range v.Options {
		if o != v.Default {
			return o
		}
	}
	if len(v.Options) > 0 {
		return v.Options[0]
	}
	if v.Default == "456" {
		return "789"
	}
	return "456"
}

// jsonObject is {"key":"value"} without HTML escaping.
func jsonObject(key, value string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]string{key: value})
	return strings.TrimSpace(b.String())
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// curlCommand is a shell command that posts body to url; signed, it sends the Unix time in
// X-Flowd-Timestamp and computes X-Hub-Signature-256 over "timestamp.body" from
// $FLOWD_WEBHOOK_SECRET (replay protection; docs/api.md).
func curlCommand(url, body string, signed bool) string {
	if !signed {
		return "curl -X POST -H 'Content-Type: application/json' --data " + shellQuote(body) + " " + shellQuote(url)
	}
	return "ts=$(date +%s); body=" + shellQuote(body) + `; curl -X POST -H 'Content-Type: application/json' -H "X-Flowd-Timestamp: $ts" -H "X-Hub-Signature-256: sha256=$(printf %s "$ts.$body" | openssl dgst -sha256 -hmac "$` +
		secretEnv + `" | sed 's/^.* //')" --data "$body" ` + shellQuote(url)
}

// ownerWarning prints a WARNING to w and stderr when the trigger is enabled but its owner may no
// longer run the pipeline, so every delivery is refused.
func (c *cli) ownerWarning(w io.Writer, pipeline string, tr *client.WebhookTrigger) {
	if !tr.Enabled || tr.OwnerCanRun {
		return
	}
	problem := tr.OwnerProblem
	if problem == "" {
		problem = fmt.Sprintf("disable and re-enable it as a user who may run %s", pipeline)
	}
	msg := fmt.Sprintf("the webhook's owner %s may not run %s, so every request is refused (403): %s", dash(tr.EnabledBy), pipeline, problem)
	fmt.Fprintf(w, "WARNING: %s\n", msg)
	c.warn("%s", msg)
}

func (c *cli) cmdWebhookDisable(ctx context.Context, args []string) int {
	f := newFlags("webhook disable", "flowd webhook disable PIPELINE", `
Disable the webhook trigger of PIPELINE (pipeline admins). Its URL answers 404 until the
trigger is enabled again, which keeps the same URL.`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	_, err := cl.WebhookDisable(ctx, pos[0])
	return c.done(err, "webhook of %s disabled; its URL answers 404 until 'flowd webhook enable %s' (same URL)", pos[0], pos[0])
}

func (c *cli) cmdWebhookRotate(ctx context.Context, args []string) int {
	f := newFlags("webhook rotate", "flowd webhook rotate PIPELINE", `
Give the webhook trigger of PIPELINE a new URL (pipeline admins), e.g. after the old one
leaked. The old URL stops working at once: update every system that calls it.`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	tr, err := cl.WebhookRotate(ctx, pos[0])
	if err != nil {
		if client.IsStatus(err, http.StatusConflict) {
			return c.fail(fmt.Errorf("%w (enable it first: flowd webhook enable %s)", err, pos[0]))
		}
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "webhook URL of %s rotated; the old URL stopped working\n", pos[0])
	fmt.Fprintf(c.stdout, "URL: %s\n", urlOrHidden(tr))
	if !tr.Enabled {
		fmt.Fprintf(c.stdout, "the webhook is disabled: 'flowd webhook enable %s' turns it on\n", pos[0])
	}
	c.ownerWarning(c.stdout, pos[0], tr)
	return 0
}

func urlOrHidden(tr *client.WebhookTrigger) string {
	switch {
	case tr.URL != nil:
		return *tr.URL
	case tr.EnabledBy == "" && !tr.Enabled:
		return "- (never enabled)"
	}
	return "(only admins see the URL)"
}

func (c *cli) cmdWebhookShow(ctx context.Context, args []string) int {
	f := newFlags("webhook show", "flowd webhook show PIPELINE", `
Show the webhook trigger of PIPELINE: whether it is enabled, its URL (pipeline admins only),
its owner (webhook runs run as this user), since when, and whether requests must be signed.
Warns when the owner may no longer run the pipeline: then every request is refused.`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	tr, err := cl.WebhookGet(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	fmt.Fprintf(w, "Pipeline:  %s\n", pos[0])
	fmt.Fprintf(w, "Enabled:   %s\n", yesNo(tr.Enabled))
	fmt.Fprintf(w, "URL:       %s\n", urlOrHidden(tr))
	owner := dash(tr.EnabledBy)
	if tr.EnabledBy != "" {
		owner += " (webhook runs run as this user)"
	}
	fmt.Fprintf(w, "Owner:     %s\n", owner)
	fmt.Fprintf(w, "Since:     %s\n", fmtTime(tr.EnabledAt))
	secret := "no (requests need no signature)"
	switch {
	case tr.HasSecret && tr.RequireTimestamp:
		secret = "yes (requests must carry X-Hub-Signature-256 over X-Flowd-Timestamp and the body; Git hosts sign their way)"
	case tr.HasSecret:
		secret = "yes (requests must carry X-Hub-Signature-256)"
	}
	fmt.Fprintf(w, "Secret:    %s\n", secret)
	c.ownerWarning(w, pos[0], tr)
	if !tr.Enabled {
		fmt.Fprintf(w, "\nEnable it with 'flowd webhook enable %s' (pipeline admins).\n", pos[0])
	}
	return 0
}

func (c *cli) cmdWebhookAudit(ctx context.Context, args []string) int {
	f := newFlags("webhook audit", "flowd webhook audit PIPELINE", `
List the changes to the webhook trigger of PIPELINE, newest first: who enabled, disabled or
rotated it, or changed its secret (pipeline admins).`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	entries, err := cl.WebhookAudit(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	if len(entries) == 0 {
		fmt.Fprintf(c.stderr, "the webhook of %s was never changed\n", pos[0])
		return 0
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, []string{fmtTime(&e.At), dash(e.Actor), dash(e.Action), dash(e.Detail)})
	}
	table(c.stdout, []string{"AT", "ACTOR", "ACTION", "DETAIL"}, rows)
	return 0
}

// headerFlag collects repeated -H 'Name: value' flags.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	http.Header(h).Add(strings.TrimSpace(k), strings.TrimSpace(v))
	return nil
}

func (c *cli) cmdWebhookDryRun(ctx context.Context, args []string) int {
	f := newFlags("webhook dry-run", "flowd webhook dry-run PIPELINE [--data JSON | -f FILE] [--content-type TYPE] [-H 'NAME: VALUE' …] [--sign]", `
Send a request through the webhook of PIPELINE as a caller would, without starting a run
(pipeline developers), and print whether it would start one, with which variables, which keys
would be ignored, and the decision step by step. The body defaults to {} (the default
variables). Without a signature header the signature step is not checked (you are signed
in); --sign signs the body with $FLOWD_WEBHOOK_SECRET (X-Hub-Signature-256) to check it too;
-H adds other headers, e.g. a Git host's event header. The dry run is recorded as a delivery. Exit status: 0 if a run would
start, 1 if not.`, 1, 1)
	data := f.String("data", "", "the request body, a `JSON` text such as '{\"abc\":\"456\"}' (default {})")
	file := f.String("f", "", "read the request body from `FILE`; - for stdin")
	ctype := f.String("content-type", "application/json", "the request's Content-`TYPE`")
	header := headerFlag{}
	f.Var(header, "H", "add the request header `'NAME: VALUE'` (repeatable)")
	sign := f.Bool("sign", false, "sign the body with $"+secretEnv+" (X-Hub-Signature-256)")
	cn := f.connFlags()
	pos, code := c.parse(f, args)
	if code >= 0 {
		return code
	}
	dataSet := isSet(f, "data")
	if dataSet && *file != "" {
		return c.usageError(f, "use either --data or -f, not both")
	}
	secret := c.getenv(secretEnv)
	if *sign && secret == "" {
		return c.usageError(f, "--sign needs the secret in %s", secretEnv)
	}
	body := []byte("{}")
	switch {
	case dataSet:
		body = []byte(*data)
	case *file == "-":
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return c.fail(fmt.Errorf("read stdin: %w", err))
		}
		body = b
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return c.fail(fmt.Errorf("read request body: %w", err))
		}
		body = b
	}
	h := http.Header(header)
	if h.Get("Content-Type") == "" && *ctype != "" {
		h.Set("Content-Type", *ctype)
	}
	if *sign {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
	}
	status, ans, err := cl.WebhookDryRunHeaders(ctx, pos[0], h, body)
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	fmt.Fprintf(w, "would start: %s\n", yesNo(ans.WouldStart))
	if ans.Skipped != nil {
		fmt.Fprintf(w, "skipped:     %s\n", *ans.Skipped)
	}
	if ans.Error != nil || status >= 300 {
		fmt.Fprintf(w, "answer:      %s\n", answerError(status, ans))
	}
	if ans.RetryAfter > 0 {
		fmt.Fprintf(w, "retry:       %s\n", retryAfter(ans.RetryAfter))
	}
	if len(ans.Variables) > 0 {
		fmt.Fprintln(w, "variables:")
		for _, k := range slices.Sorted(maps.Keys(ans.Variables)) {
			fmt.Fprintf(w, "  %s=%s\n", k, ans.Variables[k])
		}
	}
	if len(ans.Ignored) > 0 {
		fmt.Fprintf(w, "ignored:     %s (not declared by %s)\n", strings.Join(ans.Ignored, ", "), pos[0])
	}
	printTrace(w, ans.Trace)
	if ans.Error != nil && ans.Error.Code == "invalid_signature" && !*sign {
		fmt.Fprintf(w, "the webhook has a secret: set %s and pass --sign\n", secretEnv)
	}
	if ans.Delivery > 0 {
		fmt.Fprintf(w, "recorded as delivery %d: flowd delivery %d\n", ans.Delivery, ans.Delivery)
	}
	if ans.WouldStart {
		return 0
	}
	return 1
}

// answerError is "422 invalid_variables: message" for a webhook answer that refused.
func answerError(status int, ans *client.WebhookAnswer) string {
	s := fmt.Sprintf("%d %s", status, http.StatusText(status))
	if ans.Error != nil {
		s = fmt.Sprintf("%d %s: %s", status, ans.Error.Code, ans.Error.Message)
		for _, p := range ans.Error.Problems {
			s += "\n  " + p.String()
		}
	}
	return s
}

// printTrace prints a webhook's decision as "✔ step: detail" / "✖ step: detail" lines.
func printTrace(w io.Writer, trace []client.TraceStep) {
	if len(trace) == 0 {
		return
	}
	fmt.Fprintln(w, "trace:")
	for _, s := range trace {
		mark := "✖"
		if s.OK {
			mark = "✔"
		}
		if s.Detail == "" {
			fmt.Fprintf(w, "  %s %s\n", mark, s.Step)
		} else {
			fmt.Fprintf(w, "  %s %s: %s\n", mark, s.Step, s.Detail)
		}
	}
}
