package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// BranchGroup is the concurrency group that means one group per branch: concurrency.group
// "branch" puts each run in the group named after its branch (or tag). Runs that build no
// branch or tag (a pipeline without a source, a run of a bare commit) share the group "branch".
const BranchGroup = "branch"

// concurrencyGroup is the group of a run under cc (nil: no concurrency, group ""):
//
//   - "branch": the run's branch or tag name (see BranchGroup);
//   - an expression that compiles as CEL: its value over in (body, headers, event), which must
//     be a non-empty string, number or bool; an error is a *pipeline.VariableError (422);
//   - anything else (say "deploy" or "prod-db", which are not valid CEL) is the group's name as
//     written.
//
// how says which of these applied, for the trace.
func (c *programs) concurrencyGroup(ctx context.Context, cc *pipeline.Concurrency, g *run.Git, in rules.Input) (group, how string, err error) {
	if cc == nil {
		return "", "", nil
	}
	expr := strings.TrimSpace(cc.Group)
	if expr == BranchGroup {
		switch {
		case g != nil && g.Tag != "":
			return g.Tag, "the run's tag", nil
		case g != nil && g.Branch != "":
			return g.Branch, "the run's branch", nil
		}
		return BranchGroup, "the run builds no branch or tag", nil
	}
	prg, err := c.compile(expr)
	if err != nil {
		return expr, "a name, not a CEL expression", nil
	}
	v, err := prg.Named("concurrency.group").Value(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		msg := strings.Replace(err.Error(), "webhook.variables.concurrency.group", "concurrency.group", 1)
		return "", "", &pipeline.VariableError{Problems: []pipeline.VariableProblem{{Key: "concurrency.group", Message: msg}}}
	}
	if strings.TrimSpace(v) == "" {
		return "", "", &pipeline.VariableError{Problems: []pipeline.VariableProblem{{Key: "concurrency.group",
			Message: fmt.Sprintf("concurrency.group %s gave an empty name", expr)}}}
	}
	return v, "the value of the CEL expression " + expr, nil
}

// applyConcurrency sets b's concurrency group and bound from its pipeline's concurrency option
// and returns the trace line ("" without the option).
func (s *Service) applyConcurrency(ctx context.Context, b *Built, in rules.Input) (string, error) {
	cc := b.Def.Concurrency
	group, how, err := s.programs.concurrencyGroup(ctx, cc, b.Create.Git, in)
	if err != nil || cc == nil {
		return "", err
	}
	group = b.groupWithoutSecrets(group)
	b.Create.ConcurrencyGroup, b.Create.MaxRunning = group, cc.MaxRunning
	line := fmt.Sprintf("group %q (%s)", group, how)
	if cc.MaxRunning > 0 {
		line += fmt.Sprintf("; at most %d of its runs run at once, the others wait", cc.MaxRunning)
	}
	if cc.CancelPrevious {
		numbers, err := s.activeInGroup(ctx, b.Create.PipelineID, group)
		if err != nil {
			return "", err
		}
		if len(numbers) == 0 {
			line += "; cancel_previous: no older run of the group is queued or running"
		} else {
			line += "; cancel_previous: superseded runs " + runNumbers(numbers)
		}
	}
	return line, nil
}

// activeInGroup returns the numbers of the queued and running runs of a pipeline's group, oldest
// first (at most 200 of each), for the trace: RunSupersede cancels exactly those that are still
// queued or running once the new run is stored.
func (s *Service) activeInGroup(ctx context.Context, pipelineID int64, group string) ([]int64, error) {
	var numbers []int64
	for _, st := range []run.Status{run.Queued, run.Running} {
		runs, err := s.Store.RunList(ctx, pipelineID, store.RunListParams{Limit: 200, Status: st})
		if err != nil {
			return nil, fmt.Errorf("trigger: runs of group %q: %w", group, err)
		}
		for _, r := range runs {
			if r.ConcurrencyGroup == group {
				numbers = append(numbers, r.Number)
			}
		}
	}
	slices.Sort(numbers)
	return numbers, nil
}

// runNumbers formats run numbers as "#1, #2".
func runNumbers(numbers []int64) string {
	parts := make([]string, len(numbers))
	for i, n := range numbers {
		parts[i] = fmt.Sprintf("#%d", n)
	}
	return strings.Join(parts, ", ")
}

// supersede applies cancel_previous after run r was stored: the older queued runs of its
// group are canceled, the older running ones marked cancel-requested and their processes
// stopped through Cancel. A failure is logged, not returned: the new run is stored either way,
// and the older runs then simply finish.
func (s *Service) supersede(ctx context.Context, r run.Run, cancelPrevious bool) {
	if !cancelPrevious || r.ConcurrencyGroup == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	running, err := s.Store.RunSupersede(ctx, r.ID)
	if err != nil {
		s.logger().Error("trigger: supersede older runs of the group", "run", r.ID, "group", r.ConcurrencyGroup, "err", err)
		return
	}
	if s.Cancel != nil {
		for _, id := range running {
			s.Cancel(id)
		}
	}
}

// groupWithoutSecrets returns group, or — when it contains the value of a secret variable (a
// CEL group that reads one) — a name derived from it that does not reveal it: runs with the
// same value still share a group, and the run's JSON never shows the secret.
func (b *Built) groupWithoutSecrets(group string) string {
	for _, v := range b.secretValues() {
		if v != "" && strings.Contains(group, v) {
			sum := sha256.Sum256([]byte(group))
			return "secret-" + hex.EncodeToString(sum[:8])
		}
	}
	return group
}
