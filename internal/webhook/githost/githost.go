package githost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Provider names a Git host.
type Provider string

// The hosts this package knows.
const (
	GitHub          Provider = "github"
	GitLab          Provider = "gitlab"
	Codeup          Provider = "codeup" // Alibaba Cloud DevOps Codeup: GitLab-shaped bodies
	Gitea           Provider = "gitea"  // Gitea and Forgejo
	Gogs            Provider = "gogs"
	Bitbucket       Provider = "bitbucket"        // Bitbucket Cloud
	BitbucketServer Provider = "bitbucket-server" // Bitbucket Server and Data Center
)

// providers lists every Provider, in the order Detect tries them.
var providers = []Provider{Codeup, Gitea, Gogs, GitLab, GitHub, Bitbucket, BitbucketServer}

// Kind is what an Event is about.
type Kind string

// The kinds of Event.
const (
	KindPush        Kind = "push"         // a branch was pushed, created or deleted
	KindTag         Kind = "tag"          // a tag was pushed, created or deleted
	KindPullRequest Kind = "pull_request" // a pull or merge request was opened, updated, closed…
	KindPing        Kind = "ping"         // the host tests the webhook (GitHub ping, Bitbucket Server diagnostics:ping)
	KindOther       Kind = "other"        // any other event; RawEvent says which
)

// ZeroSHA is the all-zero object name hosts send as Before of a created ref and After of a
// deleted one.
const ZeroSHA = "0000000000000000000000000000000000000000"

// ErrInvalidPayload is wrapped by every error Parse returns for a body it cannot read (not
// JSON, not an object, fields of the wrong type), so a handler can answer 400 invalid_json.
var ErrInvalidPayload = errors.New("invalid payload")

// Commit is one commit of a push.
type Commit struct {
	ID, Message string
	Author      string // the author's name (Bitbucket: display name)
	URL         string // the commit's web page
	Timestamp   time.Time
	// Added, Modified and Removed are the paths the commit changed, when the host lists them
	// (see Event.FilesOmitted).
	Added, Modified, Removed []string
}

// PullRequest is the pull or merge request of a KindPullRequest event.
type PullRequest struct {
	Number       int    // the number people see (GitLab's iid)
	Action       string // the host's action: "opened", "synchronize", "open", "update", "created", "from_ref_updated"…
	Title        string
	SourceBranch string
	TargetBranch string
	HeadSHA      string // the source's latest commit ("" when the host does not say, as Gogs)
	URL          string // the request's web page
}

// Event is one Git host webhook delivery, the same shape for every host.
type Event struct {
	Provider   Provider
	Kind       Kind
	RawEvent   string   // the host's event name, e.g. "push", "Push Hook", "repo:push"
	DeliveryID string   // the host's delivery id header ("" when the host sends none)
	RepoName   string   // e.g. "acme/app"
	RepoURLs   []string // every URL the payload gives for the repository: clone HTTP(S), SSH, web
	CloneURL   string   // the HTTP(S) clone URL, else the first usable one
	Ref        string   // "refs/heads/main", "refs/tags/v1.0" (pull requests: see the package doc)
	Branch     string   // set for branch pushes, and the source branch of pull requests
	Tag        string   // set for tag pushes

	Before, After    string // the ref's old and new commit; ZeroSHA for a created or deleted ref
	Created, Deleted bool   // the ref was created / deleted

	Commits    []Commit // in the host's order
	HeadCommit *Commit  // the commit the ref now points at, when the host describes it
	Pusher     string   // who pushed (pull requests: who acted)

	// CommitsOmitted is set when the host never lists a push's commits (Bitbucket Server), so
	// an empty Commits says nothing about the push.
	CommitsOmitted bool
	// FilesOmitted is set when no commit carries file lists (Bitbucket Cloud and Server,
	// Codeup, Gogs), so ChangedFiles cannot tell which paths changed.
	FilesOmitted bool
	// CommitsTruncated is set when the host says it listed only some of the push's commits.
	CommitsTruncated bool

	PullRequest *PullRequest // set for KindPullRequest
}

// ChangedFiles returns the union of the added, modified and removed paths of e's commits,
// sorted, each once.
func (e *Event) ChangedFiles() []string {
	var files []string
	for _, c := range e.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				if f != "" {
					files = append(files, f)
				}
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// Detect recognises the host that sent a webhook request by its event headers. Codeup comes
// before GitLab (its bodies are GitLab-shaped), Gitea and Forgejo before Gogs and GitHub
// (they send those hosts' headers too), and Bitbucket Cloud and Server share X-Event-Key, told
// apart by its value and then by their delivery id headers.
func Detect(h http.Header) (Provider, bool) {
	switch {
	case h.Get("Codeup-Event") != "" || h.Get("X-Codeup-Event") != "":
		return Codeup, true
	case h.Get("X-Forgejo-Event") != "" || h.Get("X-Gitea-Event") != "":
		return Gitea, true
	case h.Get("X-Gogs-Event") != "":
		return Gogs, true
	case h.Get("X-Gitlab-Event") != "":
		return GitLab, true
	case h.Get("X-GitHub-Event") != "":
		return GitHub, true
	case h.Get("X-Event-Key") != "":
		return detectBitbucket(h), true
	}
	return "", false
}

// detectBitbucket tells Bitbucket Cloud from Server for a request with X-Event-Key: by the
// event key when only one of them uses it, else by the delivery id headers; Cloud when
// nothing tells.
func detectBitbucket(h http.Header) Provider {
	key := strings.TrimSpace(h.Get("X-Event-Key"))
	switch {
	case strings.HasPrefix(key, "pr:"), strings.HasPrefix(key, "diagnostics:"),
		strings.HasPrefix(key, "mirror:"), strings.HasPrefix(key, "project:"),
		strings.HasPrefix(key, "repo:comment:"),
		key == "repo:refs_changed", key == "repo:modified", key == "repo:forked",
		key == "repo:secret_detected":
		return BitbucketServer
	case strings.HasPrefix(key, "pullrequest:"), strings.HasPrefix(key, "issue:"),
		strings.HasPrefix(key, "repo:commit_"),
		key == "repo:push", key == "repo:fork", key == "repo:updated", key == "repo:transfer",
		key == "repo:imported", key == "repo:created", key == "repo:deleted":
		return Bitbucket
	case h.Get("X-Request-UUID") != "" || h.Get("X-Hook-UUID") != "":
		return Bitbucket
	case h.Get("X-Request-Id") != "":
		return BitbucketServer
	}
	return Bitbucket
}

// eventHeader returns the host's event name from h.
func eventHeader(p Provider, h http.Header) string {
	var names []string
	switch p {
	case GitHub:
		names = []string{"X-GitHub-Event"}
	case GitLab:
		names = []string{"X-Gitlab-Event"}
	case Codeup:
		names = []string{"Codeup-Event", "X-Codeup-Event", "X-Gitlab-Event"}
	case Gitea:
		names = []string{"X-Forgejo-Event", "X-Gitea-Event"}
	case Gogs:
		names = []string{"X-Gogs-Event"}
	case Bitbucket, BitbucketServer:
		names = []string{"X-Event-Key"}
	}
	return firstHeader(h, names...)
}

// deliveryID returns the host's per-delivery id from h, "" when it sends none.
func deliveryID(p Provider, h http.Header) string {
	switch p {
	case GitHub:
		return firstHeader(h, "X-GitHub-Delivery")
	case GitLab:
		return firstHeader(h, "X-Gitlab-Event-UUID")
	case Gitea:
		return firstHeader(h, "X-Forgejo-Delivery", "X-Gitea-Delivery")
	case Gogs:
		return firstHeader(h, "X-Gogs-Delivery")
	case Bitbucket:
		return firstHeader(h, "X-Request-UUID")
	case BitbucketServer:
		return firstHeader(h, "X-Request-Id")
	}
	return ""
}

// firstHeader returns the trimmed value of the first of names that h has non-blank.
func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// Parse turns a webhook request of host p (headers h, raw body) into an Event. Push, tag-push,
// pull/merge-request and ping events are read from the body; any other event is Kind other
// with RawEvent set and its body unread. A body that cannot be read gives an error wrapping
// ErrInvalidPayload; Parse never panics.
func Parse(p Provider, h http.Header, body []byte) (*Event, error) {
	if !slices.Contains(providers, p) {
		return nil, fmt.Errorf("githost: unknown provider %q", p)
	}
	raw := eventHeader(p, h)
	if raw == "" {
		return nil, fmt.Errorf("githost: %s request without its event header: a %s webhook sends one, so this request did not come from %s", p, p, p)
	}
	e := &Event{Provider: p, Kind: KindOther, RawEvent: raw, DeliveryID: deliveryID(p, h)}
	var parse func(e *Event, body []byte) error
	switch p {
	case GitHub:
		parse = githubParser(raw)
	case GitLab, Codeup:
		parse = gitlabParser(raw)
	case Gitea, Gogs:
		parse = giteaParser(raw)
	case Bitbucket:
		parse = bitbucketParser(raw)
	case BitbucketServer:
		parse = bitbucketServerParser(raw)
	}
	if parse == nil {
		return e, nil
	}
	if isPing(p, raw) && len(bytes.TrimSpace(body)) == 0 {
		e.Kind = KindPing // nothing more to read
		return e, nil
	}
	js, err := jsonBody(h, body)
	if err != nil {
		return nil, fmt.Errorf("githost: %s %q event: %w", p, raw, err)
	}
	if err := parse(e, js); err != nil {
		return nil, fmt.Errorf("githost: %s %q event: %w", p, raw, err)
	}
	return e, nil
}

// isPing reports whether raw is p's ping event.
func isPing(p Provider, raw string) bool {
	return (p == GitHub && raw == "ping") || (p == BitbucketServer && raw == "diagnostics:ping")
}

// jsonBody returns the JSON of a webhook body: the body itself, or the payload field of a
// form-encoded one.
func jsonBody(h http.Header, body []byte) ([]byte, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the body is empty, a JSON object was expected", ErrInvalidPayload)
	}
	mediaType, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mediaType == "application/x-www-form-urlencoded" && trimmed[0] != '{' {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: the form-encoded body cannot be read: %v", ErrInvalidPayload, err)
		}
		if !form.Has("payload") {
			return nil, fmt.Errorf("%w: the form-encoded body has no payload field", ErrInvalidPayload)
		}
		return []byte(form.Get("payload")), nil
	}
	return body, nil
}

// decode reads the JSON object body into v.
func decode(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return fmt.Errorf("%w: the body is empty, a JSON object was expected", ErrInvalidPayload)
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("%w: the body is not a JSON object", ErrInvalidPayload)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return fmt.Errorf("%w: not valid JSON at byte %d: %v", ErrInvalidPayload, syn.Offset, err)
		case errors.As(err, &typ):
			return fmt.Errorf("%w: field %s is a JSON %s, not the %s the host sends", ErrInvalidPayload, typ.Field, typ.Value, typ.Type)
		}
		return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return nil
}

// timestamp is a commit time as hosts write it; one that cannot be read is the zero time
// rather than an error, since no run depends on it.
type timestamp struct{ time.Time }

// timeLayouts are the time formats hosts use.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	for _, layout := range timeLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return nil
}

// setRef fills e's Ref, Kind, Branch and Tag from a pushed ref.
func (e *Event) setRef(ref string) {
	e.Ref = ref
	switch {
	case strings.HasPrefix(ref, "refs/tags/"):
		e.Kind, e.Tag = KindTag, strings.TrimPrefix(ref, "refs/tags/")
	case strings.HasPrefix(ref, "refs/heads/"):
		e.Kind, e.Branch = KindPush, strings.TrimPrefix(ref, "refs/heads/")
	default:
		e.Kind = KindPush
	}
}

// setCreatedDeleted derives Created and Deleted from all-zero SHAs, on top of what the host
// said.
func (e *Event) setCreatedDeleted() {
	if isZeroSHA(e.Before) && e.After != "" && !isZeroSHA(e.After) {
		e.Created = true
	}
	if isZeroSHA(e.After) {
		e.Deleted = true
	}
}

// isZeroSHA reports whether s is a non-empty run of '0' (hosts send 40, or 64 for SHA-256
// repositories).
func isZeroSHA(s string) bool {
	return s != "" && strings.Trim(s, "0") == ""
}

// addRepoURLs appends the non-blank urls not already in e.RepoURLs.
func (e *Event) addRepoURLs(urls ...string) {
	for _, u := range urls {
		u = strings.TrimSpace(u)
		if u != "" && !slices.Contains(e.RepoURLs, u) {
			e.RepoURLs = append(e.RepoURLs, u)
		}
	}
}

// setCloneURL sets CloneURL to the first HTTP(S) one of candidates, else the first non-blank.
func (e *Event) setCloneURL(candidates ...string) {
	for _, u := range candidates {
		l := strings.ToLower(strings.TrimSpace(u))
		if strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
			e.CloneURL = strings.TrimSpace(u)
			return
		}
	}
	for _, u := range candidates {
		if u = strings.TrimSpace(u); u != "" {
			e.CloneURL = u
			return
		}
	}
}

// setHeadCommit points HeadCommit at the commit whose ID is After when HeadCommit is unset.
func (e *Event) setHeadCommit() {
	if e.HeadCommit != nil || e.After == "" {
		return
	}
	for i := range e.Commits {
		if e.Commits[i].ID == e.After {
			c := e.Commits[i]
			e.HeadCommit = &c
			return
		}
	}
}

// listed reports whether the host sent any of a commit's file lists (each nil when absent).
func listed(added, modified, removed *[]string) bool {
	return added != nil || modified != nil || removed != nil
}

// addPushCommits appends a push's commits to e.Commits; FilesOmitted is set when there are
// commits but the host listed no changed files for any of them.
func addPushCommits[C interface {
	commit() Commit
	listed() bool
}](e *Event, commits []C) {
	anyListed := false
	for _, c := range commits {
		e.Commits = append(e.Commits, c.commit())
		anyListed = anyListed || c.listed()
	}
	e.FilesOmitted = len(commits) > 0 && !anyListed
}

// setPullRequest makes e the pull (or merge) request pr, at ref, from pr's source branch.
func (e *Event) setPullRequest(pr *PullRequest, ref string) {
	e.Kind, e.PullRequest = KindPullRequest, pr
	e.Ref = ref
	e.Branch = pr.SourceBranch
}

// deref returns *p, nil when p is nil.
func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}

// firstNonEmpty returns the first non-blank of s.
func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// repoPath returns the path part of u in NormalizeRepoURL's form ("acme/app" of
// https://host/acme/app.git), "" when there is none.
func repoPath(u string) string {
	n := NormalizeRepoURL(u)
	if i := strings.IndexByte(n, '/'); i >= 0 {
		return n[i+1:]
	}
	return ""
}
