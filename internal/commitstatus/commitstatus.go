// Package commitstatus reports a run's state to the code host of the commit it ran at, as a
// commit status (GitHub, Gitea/Forgejo, Codeup), a generic commit status (GitLab) or a build
// status (Bitbucket Cloud, Bitbucket Server/Data Center). It is pure: Resolve works out where
// to send, NewRequest builds the request, Check reads the host's answer; sending, retrying and
// remembering belong to the caller.
//
// Each host's format, from its documentation (testdata/<kind>.json has the page and a request
// for every flowd state):
//
//	kind              request                                                             auth
//	github            POST {api}/repos/{owner}/{repo}/statuses/{sha}                      Authorization: Bearer TOKEN
//	gitlab            POST {api}/projects/{url-encoded path}/statuses/{sha}              PRIVATE-TOKEN: TOKEN
//	gitea             POST {api}/repos/{owner}/{repo}/statuses/{sha}                      Authorization: token TOKEN
//	bitbucket         POST {api}/repositories/{workspace}/{slug}/commit/{sha}/statuses/build
//	                                                                                      Basic for user:app-password, else Bearer
//	bitbucket_server  POST {api}/rest/api/latest/projects/{key}/repos/{slug}/commits/{sha}/builds
//	                                                                                      Basic for user:password, else Bearer
//	codeup            POST {api}/oapi/v1/codeup/organizations/{org}/repositories/{url-encoded path}/commits/{sha}/statuses
//	                                                                                      x-yunxiao-token: TOKEN
//
// Gogs has no commit status API.
package commitstatus

import (
	"context"
	"net/http"
)

// The code host kinds, as source.status_host names them.
const (
	GitHub          = "github"
	GitLab          = "gitlab"
	Gitea           = "gitea" // also Forgejo, which keeps Gitea's API
	Bitbucket       = "bitbucket"
	BitbucketServer = "bitbucket_server" // Bitbucket Server and Data Center
	Codeup          = "codeup"           // Alibaba Cloud Codeup, through the Yunxiao OpenAPI (central edition)
)

// Hosts are the kinds in the order docs list them.
var Hosts = []string{GitHub, GitLab, Gitea, Bitbucket, BitbucketServer, Codeup}

// Target is where a run's statuses go.
type Target struct {
	Host string // a kind above
	// API is the API base URL, no trailing slash: https://api.github.com, https://HOST/api/v3
	// (GitHub Enterprise), https://HOST/api/v4 (GitLab), https://HOST/api/v1 (Gitea),
	// https://api.bitbucket.org/2.0, https://HOST (Bitbucket Server), https://openapi-rdc.aliyuncs.com (Codeup).
	API string
	// Repo is the repository on the host: owner/name; GitLab group/sub/project; Bitbucket
	// workspace/slug; Bitbucket Server PROJECT/slug; Codeup organizationId/…/repo.
	Repo string
}

// Status is one report.
type Status struct {
	SHA string // 40 (or 64) hex
	// Ref is the branch or tag name, or the full ref (refs/heads/…, refs/tags/…); "" when
	// unknown. GitLab and Bitbucket Cloud get the short name; Bitbucket Server wants the full
	// ref and takes a short name for a branch, so give tags as refs/tags/….
	Ref string
	// State is the flowd run status: queued, running, success, failed, canceled.
	State string
	// Context is the pipeline name: GitHub's, Gitea's and Codeup's context, GitLab's name,
	// Bitbucket's key and name. Where a host limits its length (Bitbucket Cloud's key: 40,
	// Codeup's context: 50) a longer one is shortened to a stable prefix and hash.
	Context string
	// Description is shortened to the host's limit (GitHub: 140 characters), on a character
	// boundary.
	Description string
	TargetURL   string // the run page
}

// NewRequest builds the HTTP request that reports s to t, authenticated with token. The token
// never appears in an error.
func NewRequest(ctx context.Context, t Target, token string, s Status) (*http.Request, error) {
	f, err := formatOf(t.Host)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	return f.request(ctx, t, token, s)
}
