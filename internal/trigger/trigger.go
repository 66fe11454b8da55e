// Package trigger turns "start this pipeline" into a queued run: it opens the pipeline's stored
// secrets, resolves the run's variables (defaults plus overrides), plans the jobs and steps from
// the stages, and stores the run in one call of the store. Every way of starting a run goes
// through Service.Build: manual runs (Service.Start, StartAt) and webhook deliveries
// (Webhooks.Deliver: token, signature, owner permission, payload → Git host event matched
// against the pipeline's source → CEL rules → variables → a queued run stored with its
// delivery in one transaction). A run of a pipeline with a source builds one commit
// (run.Git): the pushed one, or the head of a branch or tag resolved with git ls-remote.
// Runs get their concurrency group here, and supersede the older runs of their group when the
// pipeline says cancel_previous.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

// Store is what the trigger needs of the store.
type Store interface {
	RunCreate(ctx context.Context, p store.RunCreate) (run.Run, error)
	RunList(ctx context.Context, pipelineID int64, p store.RunListParams) ([]run.Run, error)
	RunSupersede(ctx context.Context, runID int64) (running []int64, err error)
}

// Service starts runs. Its fields are set once before the first start.
type Service struct {
	Store Store
	Box   *secret.Box // opens the pipeline's secrets and seals the run's secret variables
	// Wake, when set, is called after a run was stored so the scheduler looks for work at once.
	Wake func()
	// Cancel, when set, stops the processes of a running run (the scheduler's Cancel). It is
	// called for the older running runs a new run supersedes (concurrency.cancel_previous).
	Cancel func(runID int64)
	Logger *slog.Logger // nil = discard
	// RequireTrusted is set when steps run as the server's own OS user: then only trusted
	// pipelines (store.Pipeline.TrustedBy) may start runs; Build refuses others with an
	// *UntrustedError.
	RequireTrusted bool
	// DefaultImage is the image of jobs without one on this server ("" = none: they run on
	// the host). A pipeline whose jobs all run in containers needs no trust.
	DefaultImage string

	programs programs  // compiled CEL of concurrency groups
	plans    planCache // parsed and planned pipeline revisions
}

// Start stores a queued run of p (at p.Revision) started by trig on behalf of triggeredBy, with
// the variables' defaults replaced by overrides (JSON values by variable name; nil = defaults).
// A run of a pipeline with a source builds the head of its default branch (see StartAt).
//
// Bad overrides give a *pipeline.VariableError (test with errors.As) and no run. The returned
// Resolved lists the ignored (undeclared) keys; its Values hold every variable's value,
// secret ones included, so callers must not show them. The run's Variables hold only the
// non-secret values; the secret ones are sealed into its SecretVariables.
func (s *Service) Start(ctx context.Context, p store.Pipeline, trig run.Trigger, triggeredBy string, overrides map[string]json.RawMessage) (run.Run, *pipeline.Resolved, error) {
	return s.StartAt(ctx, p, trig, triggeredBy, overrides, GitRef{})
}

// StartAt is Start for a run that builds ref of the pipeline's source: a branch or a tag, and/or
// a commit. A branch or tag without a commit is resolved to its head with git ls-remote; the
// zero GitRef is the default branch (DefaultBranch). A pipeline without a source takes only the
// zero GitRef. Git problems are a *GitError; bad overrides, or a concurrency.group expression
// that fails, a *pipeline.VariableError.
//
// With concurrency.cancel_previous, the older queued or running runs of the new run's group
// are canceled once it is stored (the running ones through Cancel).
func (s *Service) StartAt(ctx context.Context, p store.Pipeline, trig run.Trigger, triggeredBy string, overrides map[string]json.RawMessage, ref GitRef) (run.Run, *pipeline.Resolved, error) {
	return s.start(ctx, p, trig, triggeredBy, overrides, ref, nil)
}

// start is StartAt for a run that may be a schedule's fire (fire non-nil: the run is stored
// with it, once; store.ErrFireTaken when it already was).
func (s *Service) start(ctx context.Context, p store.Pipeline, trig run.Trigger, triggeredBy string, overrides map[string]json.RawMessage, ref GitRef, fire *store.Fire) (run.Run, *pipeline.Resolved, error) {
	b, err := s.Build(p, trig, triggeredBy, overrides)
	if err != nil {
		return run.Run{}, nil, err
	}
	if b.Def.Source != nil || ref != (GitRef{}) {
		g, err := resolveGit(ctx, b.Def.Source, ref, b.secretValues(), string(trig))
		if err != nil {
			return run.Run{}, nil, err
		}
		b.Create.Git = g
	}
	// A concurrency.group expression sees the run's variables as its body: what a webhook
	// would have sent to set them.
	body := map[string]any{}
	for k, v := range overrides {
		var x any
		if json.Unmarshal(v, &x) == nil {
			body[k] = x
		}
	}
	if _, err := s.applyConcurrency(ctx, b, rules.Input{Body: body, Event: gitMap(b.Create.Git)}); err != nil {
		return run.Run{}, nil, err
	}
	b.Create.Fire = fire
	r, err := s.Store.RunCreate(ctx, b.Create)
	if err != nil {
		return run.Run{}, nil, fmt.Errorf("trigger: create run: %w", err)
	}
	s.supersede(ctx, r, b.Def.Concurrency != nil && b.Def.Concurrency.CancelPrevious)
	s.wake()
	return r, b.Resolved, nil
}

// contained says whether every one of jobs runs in a container on this server, outside its
// trust.
func (s *Service) contained(jobs []run.Job) bool {
	if s.DefaultImage != "" {
		return true
	}
	for _, j := range jobs {
		if j.Container == nil {
			return false
		}
	}
	return true
}

// UntrustedError refuses a run of a pipeline that is not trusted on a server whose steps run as
// its own OS user (Service.RequireTrusted).
type UntrustedError struct{ Pipeline string }

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("pipeline %s is not trusted, and this server runs steps as its own OS user", e.Pipeline)
}

// Advice says why the pipeline cannot run here and what to do, for the person who asked.
func (e *UntrustedError) Advice() string {
	return "this server runs steps as its own OS user (it does not run as root, or --step-user is none), " +
		"so it runs only pipelines a global admin marked trusted: a step of any other pipeline could read the " +
		"server's data folder, secret key and database. A global admin can run `flowd pipeline trust " + e.Pipeline +
		"` (a pipeline a global admin creates is trusted); or run flowd as root, so that every job runs as a user " +
		"of its own (docs/DESIGN.md, \"Isolation\")"
}

// Built is a run ready to be stored: what Build made of a pipeline and its overrides.
type Built struct {
	Create   store.RunCreate    // the run to store: variables, sealed secrets, planned jobs
	Resolved *pipeline.Resolved // every variable's value, secret ones in clear: never show it
	Secret   map[string]bool    // the names of the secret variables
	Def      *pipeline.Pipeline // the parsed definition, its secrets' defaults filled in
}

// secretValues returns the resolved values of the secret variables (for source.credentials).
func (b *Built) secretValues() map[string]string {
	out := map[string]string{}
	for k := range b.Secret {
		out[k] = b.Resolved.Values[k]
	}
	return out
}

// Masked returns the resolved variables with the secret ones' values replaced by ***.
func (b *Built) Masked() map[string]string {
	out := make(map[string]string, len(b.Resolved.Values))
	for k, v := range b.Resolved.Values {
		if b.Secret[k] {
			v = "***"
		}
		out[k] = v
	}
	return out
}

// Build makes the run Start would store, without storing it: it opens p's secrets, resolves
// the variables (a *pipeline.VariableError for bad overrides), seals the secret ones and plans
// the jobs. Every way of starting a run builds it here, so a manual run and a webhook delivery
// cannot differ in how variables or jobs come out. The parsed definition and the planned jobs of
// a pipeline revision are worked out once and cached (see planCache); Def is shared and must
// not be changed.
func (s *Service) Build(p store.Pipeline, trig run.Trigger, triggeredBy string, overrides map[string]json.RawMessage) (*Built, error) {
	pl, err := s.planned(p)
	if err != nil {
		return nil, err
	}
	if s.RequireTrusted && p.TrustedBy == "" && !s.contained(pl.jobs) {
		return nil, &UntrustedError{Pipeline: p.Name}
	}
	def := pl.withSecret
	resolved, err := pipeline.ResolveVariables(def, overrides)
	if err != nil {
		var verr *pipeline.VariableError
		if errors.As(err, &verr) {
			return nil, verr
		}
		return nil, fmt.Errorf("trigger: resolve variables: %w", err)
	}

	vars := map[string]string{}
	secretVars := map[string]string{}
	for _, v := range def.Variables {
		if v.Secret {
			secretVars[v.Name] = resolved.Values[v.Name]
		} else {
			vars[v.Name] = resolved.Values[v.Name]
		}
	}
	sealed, err := SealSecrets(s.Box, secretVars)
	if err != nil {
		return nil, fmt.Errorf("trigger: seal secret variables: %w", err)
	}
	return &Built{
		Create: store.RunCreate{
			PipelineID:      p.ID,
			Revision:        p.Revision,
			Trigger:         trig,
			TriggeredBy:     triggeredBy,
			Variables:       vars,
			SecretVariables: sealed,
			Jobs:            copyJobs(pl.jobs),
		},
		Resolved: resolved,
		Secret:   copySet(pl.isSecret),
		Def:      def,
	}, nil
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// wake tells the scheduler a run was stored.
func (s *Service) wake() {
	if s.Wake != nil {
		s.Wake()
	}
}

// Plan lists the jobs of a run of p, stage by stage, each with its steps; every job and step is
// queued.
func Plan(p *pipeline.Pipeline) []run.Job {
	var jobs []run.Job
	for si, st := range p.Stages {
		for ji, j := range st.Jobs {
			job := run.Job{
				Stage:       si,
				StageName:   st.Name,
				Index:       ji,
				Name:        j.Name,
				Status:      run.Queued,
				Timeout:     j.Timeout,
				Env:         j.Env,
				RetryLost:   j.RetryRunnerLost,
				Container:   j.Container.Clone(), // the pipeline's image applied by Parse
				RunsOn:      j.RunsOn,            // the pipeline's runs-on applied by Parse
				CancelGrace: j.CancelGrace,
			}
			for k, step := range j.Steps {
				job.Steps = append(job.Steps, run.Step{Index: k, Name: step.Name, Script: step.Run, Status: run.Queued})
			}
			jobs = append(jobs, job)
		}
	}
	return jobs
}

// OpenSecrets decrypts a pipeline's or a run's sealed secrets (a JSON object of values by
// variable name); nil or empty sealed gives an empty map.
func OpenSecrets(box *secret.Box, sealed []byte) (map[string]string, error) {
	out := map[string]string{}
	if len(sealed) == 0 {
		return out, nil
	}
	if box == nil {
		return nil, errors.New("secrets are stored but no secret key is loaded")
	}
	plain, err := box.Open(sealed)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("stored secrets are not a JSON object: %w", err)
	}
	return out, nil
}

// SealSecrets encrypts secret values by variable name; an empty map gives nil (no secrets).
func SealSecrets(box *secret.Box, values map[string]string) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	if box == nil {
		return nil, errors.New("no secret key is loaded to encrypt secret variables")
	}
	plain, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encode secrets: %w", err)
	}
	return box.Seal(plain)
}
