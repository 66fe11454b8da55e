package commitstatus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// format is how one host takes a report.
type format struct {
	// states maps flowd's run statuses to the host's states.
	states map[string]string
	// segments is how many path segments the repository has: exactly, or at least when atLeast.
	segments int
	atLeast  bool
	// path is the request's escaped path below the API base.
	path func(repo []string, sha string) string
	// auth sets the headers that carry the token.
	auth func(h http.Header, token string)
	// body is the JSON body; state is already the host's.
	body func(s Status, state string) any
}

// formats are the hosts' formats by kind.
var formats = map[string]*format{
	// https://docs.github.com/en/rest/commits/statuses#create-a-commit-status: states error,
	// failure, pending, success; no running or canceled, so running is pending and canceled
	// is error. A description over 140 characters is refused with 422.
	GitHub: {
		states:   map[string]string{"queued": "pending", "running": "pending", "success": "success", "failed": "failure", "canceled": "error"},
		segments: 2,
		path: func(repo []string, sha string) string {
			return "/repos/" + escape(repo) + "/statuses/" + sha
		},
		auth: func(h http.Header, token string) {
			h.Set("Authorization", "Bearer "+token)
			h.Set("Accept", "application/vnd.github+json")
			h.Set("X-GitHub-Api-Version", "2022-11-28")
		},
		body: func(s Status, state string) any {
			return contextBody{State: state, TargetURL: s.TargetURL, Description: shorten(s.Description, 140), Context: s.Context}
		},
	},
	// https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit: states
	// pending, running, success, failed, canceled (and skipped); ref is the branch or tag
	// name; description at most 255 characters.
	GitLab: {
		states:   map[string]string{"queued": "pending", "running": "running", "success": "success", "failed": "failed", "canceled": "canceled"},
		segments: 2, atLeast: true,
		path: func(repo []string, sha string) string {
			return "/projects/" + url.PathEscape(strings.Join(repo, "/")) + "/statuses/" + sha
		},
		auth: func(h http.Header, token string) { h.Set("PRIVATE-TOKEN", token) },
		body: func(s Status, state string) any {
			return gitlabBody{State: state, Ref: shortRef(s.Ref), Name: s.Context, TargetURL: s.TargetURL, Description: shorten(s.Description, 255)}
		},
	},
	// https://gitea.com/api/swagger#/repository/repoCreateStatus (Forgejo keeps it): states
	// pending, success, error, failure, warning; no running or canceled.
	Gitea: {
		states:   map[string]string{"queued": "pending", "running": "pending", "success": "success", "failed": "failure", "canceled": "error"},
		segments: 2,
		path: func(repo []string, sha string) string {
			return "/repos/" + escape(repo) + "/statuses/" + sha
		},
		auth: func(h http.Header, token string) { h.Set("Authorization", "token "+token) },
		body: func(s Status, state string) any {
			return contextBody{State: state, TargetURL: s.TargetURL, Description: s.Description, Context: s.Context}
		},
	},
	// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post:
	// states INPROGRESS, SUCCESSFUL, FAILED, STOPPED; key, state and url required; the key is
	// refused over 40 characters ("Ensure this value has at most 40 characters"), the name
	// over 255; refname is the branch name.
	Bitbucket: {
		states:   map[string]string{"queued": "INPROGRESS", "running": "INPROGRESS", "success": "SUCCESSFUL", "failed": "FAILED", "canceled": "STOPPED"},
		segments: 2,
		path: func(repo []string, sha string) string {
			return "/repositories/" + escape(repo) + "/commit/" + sha + "/statuses/build"
		},
		auth: bitbucketAuth,
		body: func(s Status, state string) any {
			b := bitbucketBuild(s, state, 40)
			b.Refname = shortRef(s.Ref)
			return b
		},
	},
	// https://developer.atlassian.com/server/bitbucket/how-tos/updating-build-status-for-commits/:
	// the repository-scoped builds resource (Bitbucket 7.4 and later), not the older
	// /rest/build-status/1.0/commits/{sha}: it names the repository, so one commit in two
	// repositories keeps two statuses, and it takes ref and CANCELLED. States INPROGRESS,
	// SUCCESSFUL, FAILED, CANCELLED, UNKNOWN; key, state and url required; key and name at
	// most 255 characters, ref the full ref. Answers 204.
	BitbucketServer: {
		states:   map[string]string{"queued": "INPROGRESS", "running": "INPROGRESS", "success": "SUCCESSFUL", "failed": "FAILED", "canceled": "CANCELLED"},
		segments: 2,
		path: func(repo []string, sha string) string {
			return "/rest/api/latest/projects/" + url.PathEscape(repo[0]) + "/repos/" + url.PathEscape(repo[1]) + "/commits/" + sha + "/builds"
		},
		auth: bitbucketAuth,
		body: func(s Status, state string) any {
			b := bitbucketBuild(s, state, 255)
			b.Ref = fullRef(s.Ref)
			return b
		},
	},
	// https://help.aliyun.com/zh/yunxiao/developer-reference/createcommitstatus-create-commit-status
	// (central edition): states error, failure, pending, success; context at most 50
	// characters; repositoryId is the URL-encoded full path, whose first segment is the
	// organization.
	Codeup: {
		states:   map[string]string{"queued": "pending", "running": "pending", "success": "success", "failed": "failure", "canceled": "error"},
		segments: 2, atLeast: true,
		path: func(repo []string, sha string) string {
			return "/oapi/v1/codeup/organizations/" + url.PathEscape(repo[0]) + "/repositories/" +
				url.PathEscape(strings.Join(repo, "/")) + "/commits/" + sha + "/statuses"
		},
		auth: func(h http.Header, token string) { h.Set("x-yunxiao-token", token) },
		body: func(s Status, state string) any {
			return codeupBody{State: state, Context: shortKey(s.Context, 50), Description: shorten(s.Description, 3000), TargetURL: s.TargetURL}
		},
	},
}

// The hosts' bodies. Empty optional fields are left out rather than sent blank.
type contextBody struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

type gitlabBody struct {
	State       string `json:"state"`
	Ref         string `json:"ref,omitempty"`
	Name        string `json:"name"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
}

// bitbucketBody is both Bitbucket's: Cloud names the branch in refname, Server the full ref in ref.
type bitbucketBody struct {
	Key         string `json:"key"`
	State       string `json:"state"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url"`
	Refname     string `json:"refname,omitempty"`
	Ref         string `json:"ref,omitempty"`
}

type codeupBody struct {
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description,omitempty"`
	TargetURL   string `json:"targetUrl,omitempty"`
}

// bitbucketBuild is a Bitbucket build status without its ref, the key at most maxKey characters.
func bitbucketBuild(s Status, state string, maxKey int) *bitbucketBody {
	return &bitbucketBody{Key: shortKey(s.Context, maxKey), State: state, Name: shorten(s.Context, 255),
		Description: shorten(s.Description, 255), URL: s.TargetURL}
}

// States are flowd's run statuses a report can carry.
var states = []string{"queued", "running", "success", "failed", "canceled"}

// hostState is the state host shows for flowd's run status state.
func hostState(host, state string) (string, error) {
	f, err := formatOf(host)
	if err != nil {
		return "", err
	}
	hs, ok := f.states[state]
	if !ok {
		return "", fmt.Errorf("commitstatus: unknown run status %q (want one of %s)", state, strings.Join(states, ", "))
	}
	return hs, nil
}

func formatOf(host string) (*format, error) {
	f, ok := formats[host]
	if !ok {
		return nil, fmt.Errorf("commitstatus: unknown code host %q (want one of %s)", host, strings.Join(Hosts, ", "))
	}
	return f, nil
}

func (f *format) request(ctx context.Context, t Target, token string, s Status) (*http.Request, error) {
	state, err := hostState(t.Host, s.State)
	if err != nil {
		return nil, err
	}
	repo, err := f.repo(t)
	if err != nil {
		return nil, err
	}
	api, err := apiBase(t.API)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(f.body(s, state))
	if err != nil {
		return nil, fmt.Errorf("commitstatus: encode body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+f.path(repo, strings.ToLower(s.SHA)), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("commitstatus: %s request: %w", t.Host, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	f.auth(req.Header, token)
	return req, nil
}

// repo splits t.Repo into its path segments and checks their number.
func (f *format) repo(t Target) ([]string, error) {
	segs := splitRepo(t.Repo)
	if len(segs) == f.segments || f.atLeast && len(segs) > f.segments {
		return segs, nil
	}
	return nil, fmt.Errorf("commitstatus: %s repository %q is not %s", t.Host, t.Repo, repoShape[t.Host])
}

// repoShape says what a repository looks like on each host.
var repoShape = map[string]string{
	GitHub:          "owner/name",
	GitLab:          "group/…/project",
	Gitea:           "owner/name",
	Bitbucket:       "workspace/slug",
	BitbucketServer: "PROJECT/slug",
	Codeup:          "organizationId/…/repo",
}

// splitRepo returns the non-empty segments of a repository path, or nil when one is empty.
func splitRepo(repo string) []string {
	repo = strings.Trim(repo, "/")
	if repo == "" {
		return nil
	}
	segs := strings.Split(repo, "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return nil
		}
	}
	return segs
}

func escape(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = url.PathEscape(s)
	}
	return strings.Join(out, "/")
}

// apiBase checks an API base URL and drops its trailing slash.
func apiBase(api string) (string, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("commitstatus: API base %q is not an http(s) URL", api)
	}
	return strings.TrimRight(api, "/"), nil
}

func (s Status) check() error {
	if !isSHA(s.SHA) {
		return fmt.Errorf("commitstatus: commit %q is not a 40 or 64 digit hex SHA", s.SHA)
	}
	if strings.TrimSpace(s.Context) == "" {
		return errors.New("commitstatus: the status has no context (pipeline name)")
	}
	return nil
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkToken refuses a token no header can carry; the error does not quote it.
func checkToken(token string) error {
	if token == "" {
		return errors.New("commitstatus: no token")
	}
	for _, r := range token {
		if r < ' ' || r == 0x7f {
			return errors.New("commitstatus: the token has a control character (a stray newline?)")
		}
	}
	return nil
}

// bitbucketAuth sends user:password (an app password, or a Bitbucket Server password) as
// Basic and any other token (an access token) as Bearer.
func bitbucketAuth(h http.Header, token string) {
	if strings.Contains(token, ":") {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(token)))
		return
	}
	h.Set("Authorization", "Bearer "+token)
}

// shorten returns s cut to at most n characters, ending in "…" when cut.
func shorten(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// shortKey returns s when it has at most n characters, else a prefix of it, "-" and 8 hex
// digits of its SHA-256: the same s always gives the same key, and two long names that share
// the prefix still differ.
func shortKey(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return string([]rune(s)[:n-9]) + "-" + hex.EncodeToString(sum[:4])
}

// shortRef is a branch or tag name without refs/heads/ or refs/tags/.
func shortRef(ref string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if strings.HasPrefix(ref, p) {
			return ref[len(p):]
		}
	}
	return ref
}

// fullRef is the full ref: a short name is taken for a branch.
func fullRef(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "refs/") {
		return ref
	}
	return "refs/heads/" + ref
}
