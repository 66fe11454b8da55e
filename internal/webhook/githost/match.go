package githost

import (
	"fmt"
	"slices"

	"github.com/flowd/flowd/internal/pipeline"
)

// buildActions are the pull request actions that start runs: the request was opened or
// reopened, or its source branch got new commits, in each host's words. Closing, merging,
// labelling, reviewing and the like start nothing.
var buildActions = []string{
	"opened", "reopened", "synchronize", // GitHub
	"synchronized",             // Gitea, Gogs
	"open", "reopen", "update", // GitLab, Codeup
	"created", "updated", // Bitbucket Cloud (pullrequest:created, pullrequest:updated)
	"from_ref_updated", // Bitbucket Server (pr:opened, pr:from_ref_updated)
}

// Match decides whether event e starts a run of a pipeline whose source is src. When it does
// not, reason names the rule that skipped it, for the delivery log and the caller. When it
// does, reason is "" or a note on a rule that could not be applied (source.paths when the host
// sends no file lists).
//
// The rules, in order:
//   - ping events and events of Kind other start nothing;
//   - one of e.RepoURLs must be SameRepo as source.url;
//   - the event's kind must be on in source.events (push and tag when it is nil);
//   - branch pushes: a deleted branch starts nothing; the branch must match a source.branches
//     glob (nil = every branch, empty = none); a push that lists no commits starts nothing
//     unless it creates the branch at a commit (or the host never lists commits, as Bitbucket
//     Server); with source.paths, a changed file must match one of its globs, except when the
//     host sends no file lists, lists only some of the commits, or the push is a new branch
//     without commits: then the filter is not applied and the run starts;
//   - tag pushes: source.tags must be set (nil = no tag builds) and match; a deleted tag
//     starts nothing; source.paths does not apply to tags;
//   - pull requests: the action must be one that brings new code (opened, reopened, new
//     commits; a GitLab "update" without oldrev is an edit and starts nothing; Bitbucket
//     Cloud's pullrequest:updated cannot be told apart and starts a run), and the TARGET branch must match source.branches, as GitHub Actions'
//     pull_request branches filter does: source.branches says which branches a change may land
//     on. source.paths does not apply (the payloads list no files).
func Match(src *pipeline.Source, e *Event) (ok bool, reason string) {
	switch {
	case e == nil:
		return false, "no event"
	case src == nil:
		return false, "the pipeline has no source, so Git host events do not start it"
	}
	switch e.Kind {
	case KindPing:
		return false, "ping event"
	case KindPush, KindTag, KindPullRequest:
	default:
		return false, fmt.Sprintf("%s %q events do not start runs (only push, tag and pull request events do)", e.Provider, e.RawEvent)
	}
	if reason := matchRepo(src.URL, e); reason != "" {
		return false, reason
	}
	switch e.Kind {
	case KindTag:
		return matchTag(src, e)
	case KindPullRequest:
		return matchPullRequest(src, e)
	}
	return matchPush(src, e)
}

// matchRepo returns why e's repository is not src's, "" when it is.
func matchRepo(srcURL string, e *Event) string {
	want := NormalizeRepoURL(srcURL)
	if want == "" {
		return "source.url is empty, so no repository's events match it"
	}
	for _, u := range e.RepoURLs {
		if SameRepo(srcURL, u) {
			return ""
		}
	}
	if len(e.RepoURLs) == 0 {
		return fmt.Sprintf("the event names no repository, so it cannot be matched to source.url %s", want)
	}
	got := NormalizeRepoURL(firstNonEmpty(e.CloneURL, e.RepoURLs[0]))
	return fmt.Sprintf("the event's repository %s is not source.url %s", got, want)
}

// eventOn reports whether source.events lets event (push, tag, pull_request) start runs.
func eventOn(src *pipeline.Source, event string) bool {
	if src.Events == nil {
		return event == "push" || event == "tag"
	}
	return slices.Contains(src.Events, event)
}

// matchPush applies the rules of a branch push.
func matchPush(src *pipeline.Source, e *Event) (bool, string) {
	if !eventOn(src, "push") {
		return false, "push events are off: add push to source.events"
	}
	if e.Branch == "" {
		return false, fmt.Sprintf("ref %q is neither a branch nor a tag", e.Ref)
	}
	if e.Deleted {
		return false, fmt.Sprintf("branch %q was deleted", e.Branch)
	}
	if src.Branches != nil && !globAny(src.Branches, e.Branch) {
		return false, fmt.Sprintf("branch %q matches none of source.branches %v", e.Branch, src.Branches)
	}
	newAtCommit := e.Created && e.After != "" && !isZeroSHA(e.After)
	if len(e.Commits) == 0 && !e.CommitsOmitted && !newAtCommit {
		return false, "the push has no commits"
	}
	if len(src.Paths) == 0 {
		return true, ""
	}
	switch {
	case e.CommitsOmitted || e.FilesOmitted:
		return true, fmt.Sprintf("source.paths %v not applied: %s sends no changed-file lists", src.Paths, e.Provider)
	case len(e.Commits) == 0:
		return true, fmt.Sprintf("source.paths %v not applied: the new branch brings no commits to compare", src.Paths)
	}
	for _, f := range e.ChangedFiles() {
		if globAny(src.Paths, f) {
			return true, ""
		}
	}
	if e.CommitsTruncated {
		return true, fmt.Sprintf("source.paths %v not applied: no listed file matches, but %s listed only some of the push's commits", src.Paths, e.Provider)
	}
	return false, fmt.Sprintf("no changed file matches source.paths %v", src.Paths)
}

// matchTag applies the rules of a tag push.
func matchTag(src *pipeline.Source, e *Event) (bool, string) {
	if !eventOn(src, "tag") {
		return false, "tag events are off: add tag to source.events"
	}
	if src.Tags == nil {
		return false, "tag builds are off: source.tags is not set"
	}
	if e.Deleted {
		return false, fmt.Sprintf("tag %q was deleted", e.Tag)
	}
	if !globAny(src.Tags, e.Tag) {
		return false, fmt.Sprintf("tag %q matches none of source.tags %v", e.Tag, src.Tags)
	}
	return true, ""
}

// matchPullRequest applies the rules of a pull request event.
func matchPullRequest(src *pipeline.Source, e *Event) (bool, string) {
	if !eventOn(src, "pull_request") {
		return false, "pull_request events are off: add pull_request to source.events"
	}
	pr := e.PullRequest
	if pr == nil {
		return false, "the pull request event carries no pull request"
	}
	if !slices.Contains(buildActions, pr.Action) {
		return false, fmt.Sprintf("pull request action %q does not start runs (only opening, reopening and new commits do)", pr.Action)
	}
	if e.Provider == GitLab && pr.Action == "update" && e.Before == "" {
		// GitLab sends "update" for title, label and description edits too; only an update
		// with new commits carries object_attributes.oldrev (Parse puts it in Before).
		return false, `merge request action "update" brought no new commits`
	}
	if src.Branches != nil && !globAny(src.Branches, pr.TargetBranch) {
		return false, fmt.Sprintf("pull request target branch %q matches none of source.branches %v", pr.TargetBranch, src.Branches)
	}
	if len(src.Paths) > 0 {
		return true, fmt.Sprintf("source.paths %v not applied: pull request events list no changed files", src.Paths)
	}
	return true, ""
}
