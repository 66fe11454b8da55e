package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// The steps that decide what the delivery means for the pipeline as it is now: payload →
// source → rules → variables → git → concurrency.

// payload reads the pipeline as it is now (its source and rules decide what the payload
// means) and the body: a Git host's event, or the general webhook's variables.
func (w *Webhooks) payload(ctx context.Context, d *delivery) *Outcome {
	p, err := w.pipelineOf(ctx, d)
	if errors.Is(err, store.ErrNotFound) { // deleted since the token was looked up
		return w.notFound(d)
	}
	if err != nil {
		return w.failure(d, err)
	}
	def, err := w.Runs.parsed(p)
	if err != nil { // the store only holds definitions that parsed when they were saved
		return w.failure(d, err)
	}
	d.pipe, d.def = p, def
	d.secret, d.secretKnown = secretNames(def), true
	d.withRules = hasRules(def)

	if d.fromHost {
		if out := w.hostPayload(ctx, d); out != nil {
			return out
		}
	} else if out := w.generalPayload(ctx, d); out != nil {
		return out
	}
	if d.withRules || def.Concurrency != nil {
		if d.body, err = ruleBody(d.in.ContentType, d.in.Body); err != nil {
			if d.withRules {
				msg := "the body is not JSON the webhook rules can read: " + err.Error()
				d.trace.Add("payload", false, "%s", msg)
				return w.refuse(ctx, d, CodeInvalidJSON, msg, nil)
			}
			d.body = nil
		}
	}
	return nil
}

// hostPayload parses a Git host's event; its body names no variables.
func (w *Webhooks) hostPayload(ctx context.Context, d *delivery) *Outcome {
	event, err := githost.Parse(d.provider, d.in.Headers, d.in.Body)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "githost: ")
		if errors.Is(err, githost.ErrInvalidPayload) {
			msg += ": send the JSON body the host sends, with Content-Type application/json"
		}
		d.trace.Add("payload", false, "%s", msg)
		return w.refuse(ctx, d, CodeInvalidJSON, msg, nil)
	}
	d.event, d.overrides = event, map[string]json.RawMessage{}
	d.trace.Add("payload", true, "%s", describeEvent(event))
	return nil
}

// generalPayload decodes the general webhook's body into variable overrides. Valid JSON that is
// not an object is refused, unless the pipeline's rules read the body.
func (w *Webhooks) generalPayload(ctx context.Context, d *delivery) *Outcome {
	overrides, err := webhook.DecodePayload(d.in.ContentType, d.in.Body)
	switch {
	case err == nil:
		d.trace.Add("payload", true, "a JSON object with %d keys", len(overrides))
	default:
		code, msg := CodeInvalidJSON, err.Error()
		var werr *webhook.Error
		if errors.As(err, &werr) {
			code, msg = Code(werr.Code), werr.Message
		}
		if !d.withRules || code != CodeInvalidVariables {
			d.trace.Add("payload", false, "%s", msg)
			return w.refuse(ctx, d, code, msg, nil)
		}
		// Valid JSON that is not an object: the pipeline's rules read it as body.
		overrides = map[string]json.RawMessage{}
		d.trace.Add("payload", true, "a JSON value that is not an object: no variables from the body; the webhook rules read it")
	}
	for k, v := range overrides {
		if d.secret[k] {
			d.addSecret(valueText(v))
		}
	}
	d.overrides = overrides
	return nil
}

// source matches a Git host's event against the pipeline's source: a ping or a ref the source
// does not build is skipped; a matching one gives the commit to build.
func (w *Webhooks) source(ctx context.Context, d *delivery) *Outcome {
	src, event := d.def.Source, d.event
	switch {
	case event != nil:
		if event.Kind == githost.KindPing {
			return w.skip(ctx, d, "source", fmt.Sprintf("ping event from %s: the webhook reaches flowd; push events will start runs", d.provider))
		}
		ok, reason := githost.Match(src, event)
		if !ok {
			return w.skip(ctx, d, "source", reason)
		}
		git := eventGit(src, event)
		if !validSHA(git.SHA) {
			msg := fmt.Sprintf("the %s %s event names no full commit SHA (got %q), so there is no commit to build", d.provider, event.Kind, git.SHA)
			d.trace.Add("source", false, "%s", msg)
			return w.refuse(ctx, d, CodeInvalidJSON, msg+": send the host's payload as it is", nil)
		}
		detail := describeMatch(git)
		if reason != "" {
			detail += "; note: " + reason
		}
		d.trace.Add("source", true, "%s", detail)
		d.git = git
	case src != nil:
		d.trace.Add("source", true, "not a Git host event: the run builds the head of the default branch of %s", src.URL)
	}
	return nil
}

// rules runs the pipeline's CEL rules: webhook.filter (false: skipped) and webhook.variables,
// whose values win over body keys of the same name.
func (w *Webhooks) rules(ctx context.Context, d *delivery) *Outcome {
	d.input = rules.Input{Body: d.body, Headers: ruleHeaders(d.in.Headers), Event: eventMap(d.event)}
	if !d.withRules {
		return nil
	}
	res, err := w.Runs.programs.evalRules(ctx, d.def, d.input, secretNames(d.def))
	if err != nil {
		var verr *pipeline.VariableError
		if !errors.As(err, &verr) {
			return w.stopped(d, err)
		}
		d.trace.Add("rules", false, "%s", verr.Error())
		return w.refuse(ctx, d, CodeInvalidVariables,
			verr.Error()+"; fix the pipeline's rules or the payload and send again", problemsOf(verr))
	}
	for k, v := range res.Values {
		if d.secret[k] {
			d.addSecret(v)
		}
	}
	for i, line := range res.Trace {
		d.trace.Add("rules", res.Pass || i < len(res.Trace)-1, "%s", line)
	}
	if !res.Pass {
		return w.skip(ctx, d, "", "webhook.filter is false")
	}
	var shadowed []string
	d.overrides, shadowed = mergeRuleValues(d.overrides, res.Values)
	if len(shadowed) > 0 {
		d.trace.Add("rules", true, "body keys %s ignored: webhook.variables sets them", strings.Join(shadowed, ", "))
	}
	return nil
}

// variables builds the run: the defaults with the overrides, checked as a manual start checks
// them.
func (w *Webhooks) variables(ctx context.Context, d *delivery) *Outcome {
	if d.in.Token == "" {
		// A stored body has its secret values masked: "***" from a redelivery or a dry run of a
		// stored delivery means the value was not kept, not a value to run with.
		for _, name := range sortedKeys(d.overrides) {
			if d.secret[name] && valueText(d.overrides[name]) == pipeline.Masked {
				delete(d.overrides, name)
				d.trace.Add("variables", true, "%s: the stored value was masked; the default is used", name)
			}
		}
	}
	trig := run.TriggerWebhook
	if d.event != nil {
		trig = run.TriggerPush
	}
	built, err := w.Runs.Build(d.pipe, trig, d.owner.User.Username, d.overrides)
	if uerr := (*UntrustedError)(nil); errors.As(err, &uerr) {
		d.trace.Add("permission", false, "%s", uerr.Error())
		return w.refuse(ctx, d, CodeUntrusted, uerr.Advice(), nil)
	}
	if err != nil {
		var verr *pipeline.VariableError
		if !errors.As(err, &verr) {
			return w.failure(d, err)
		}
		d.trace.Add("variables", false, "%s", verr.Error())
		return w.refuse(ctx, d, CodeInvalidVariables, verr.Error()+"; fix them and send again", problemsOf(verr))
	}
	for _, v := range built.secretValues() {
		d.addSecret(v)
	}
	d.built, d.ignored = built, built.Resolved.Ignored
	if d.ignored == nil {
		d.ignored = []string{}
	}
	if len(d.ignored) > 0 {
		d.trace.Add("variables", true, "%d variables; undeclared keys ignored: %v", len(built.Resolved.Values), d.ignored)
	} else {
		d.trace.Add("variables", true, "%d variables", len(built.Resolved.Values))
	}
	return nil
}

// git gives a payload that is not a Git host event the head of the pipeline's default branch
// (git ls-remote); a pipeline without a source builds no commit.
func (w *Webhooks) git(ctx context.Context, d *delivery) *Outcome {
	src := d.def.Source
	if d.git == nil && src != nil {
		branch, plain := DefaultBranch(src)
		if !plain {
			msg := fmt.Sprintf("this payload is not a Git host event, so it names no commit, and source.branches %v holds no plain branch name whose head could be built: put a plain branch name (such as main) first in source.branches, send the Git host's push event, or start the run with POST /api/v1/pipelines/%s/runs and a branch or commit", src.Branches, d.pipe.Name)
			d.trace.Add("git", false, "%s", msg)
			return w.refuse(ctx, d, CodeNoCommit, msg, nil)
		}
		git, err := resolveGit(ctx, src, GitRef{Branch: branch}, d.built.secretValues(), string(run.TriggerWebhook))
		if err != nil {
			var gerr *GitError
			if !errors.As(err, &gerr) {
				return w.stopped(d, err)
			}
			d.trace.Add("git", false, "%s", gerr.Message)
			return w.refuse(ctx, d, gerr.Code, gerr.Message, nil)
		}
		d.trace.Add("git", true, "branch %s of %s is at %s (git ls-remote)", git.Branch, git.RepoURL, git.SHA)
		d.git, d.input.Event = git, gitMap(git)
	}
	d.built.Create.Git = d.git
	return nil
}

// concurrency puts the run in its concurrency group (and names the runs it supersedes).
func (w *Webhooks) concurrency(ctx context.Context, d *delivery) *Outcome {
	if d.def.Concurrency == nil {
		return nil
	}
	line, err := w.Runs.applyConcurrency(ctx, d.built, d.input)
	if err != nil {
		var verr *pipeline.VariableError
		if !errors.As(err, &verr) {
			if ctx.Err() != nil {
				return w.stopped(d, err)
			}
			return w.failure(d, err)
		}
		d.trace.Add("concurrency", false, "%s", verr.Error())
		return w.refuse(ctx, d, CodeInvalidVariables,
			verr.Error()+"; fix concurrency.group or the payload and send again", problemsOf(verr))
	}
	d.trace.Add("concurrency", true, "%s", line)
	return nil
}
