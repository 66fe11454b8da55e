package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// eventKey is the idempotency key of a Git host event sent without Idempotency-Key: the host's
// delivery id, so the host's "redeliver" starts nothing new; a host that sends none (Codeup)
// gives provider:ref:after, so the same push delivered twice builds once.
func eventKey(e *githost.Event) string {
	if e.DeliveryID != "" {
		key := string(e.Provider) + "-delivery:" + e.DeliveryID
		if len(key) > 200 {
			sum := sha256.Sum256([]byte(key))
			key = "sha256:" + hex.EncodeToString(sum[:])
		}
		return key
	}
	return string(e.Provider) + ":" + e.Ref + ":" + e.After
}

// hostSignatureOK is the trace line of a Git host request whose secret checked out.
func hostSignatureOK(p githost.Provider) string {
	switch p {
	case githost.GitLab:
		return "gitlab: X-Gitlab-Token matches the trigger's secret"
	case githost.Codeup:
		return "codeup: X-Codeup-Token matches the trigger's secret"
	case githost.GitHub:
		return "github: X-Hub-Signature-256 matches the body and the trigger's secret"
	case githost.Gitea:
		return "gitea: X-Gitea-Signature (or X-Forgejo-Signature) matches the body and the trigger's secret"
	case githost.Gogs:
		return "gogs: X-Gogs-Signature matches the body and the trigger's secret"
	}
	return string(p) + ": X-Hub-Signature matches the body and the trigger's secret"
}

// describeEvent is the payload step's line for a Git host event.
func describeEvent(e *githost.Event) string {
	s := fmt.Sprintf("a %s %q event", e.Provider, e.RawEvent)
	switch e.Kind {
	case githost.KindPush, githost.KindTag:
		s += fmt.Sprintf(" (%s): %s %s → %s", e.Kind, e.Ref, shortSHA(e.Before), shortSHA(e.After))
	case githost.KindPullRequest:
		if pr := e.PullRequest; pr != nil {
			s += fmt.Sprintf(" (pull request #%d %s: %s → %s at %s)", pr.Number, pr.Action, pr.SourceBranch, pr.TargetBranch, shortSHA(e.After))
		}
	default:
		s += fmt.Sprintf(" (%s)", e.Kind)
	}
	if e.RepoName != "" {
		s += " of " + e.RepoName
	}
	return s
}

// describeMatch is the source step's line for an event that starts a run.
func describeMatch(g *run.Git) string {
	switch {
	case g.Event == string(githost.KindPullRequest):
		return fmt.Sprintf("pull request from branch %s matches the pipeline's source; the run builds %s", g.Branch, g.SHA)
	case g.Tag != "":
		return fmt.Sprintf("tag %s matches source.tags; the run builds %s", g.Tag, g.SHA)
	}
	return fmt.Sprintf("push to branch %s matches the pipeline's source; the run builds %s", g.Branch, g.SHA)
}

// shortSHA is the first 12 characters of a SHA.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
