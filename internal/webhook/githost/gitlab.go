package githost

import (
	"fmt"
	"strings"
)

// glProject is the project (and the older repository object) of GitLab's and Codeup's payloads.
type glProject struct {
	PathWithNamespace string `json:"path_with_namespace"`
	GitHTTPURL        string `json:"git_http_url"`
	GitSSHURL         string `json:"git_ssh_url"`
	HTTPURL           string `json:"http_url"`
	SSHURL            string `json:"ssh_url"`
	WebURL            string `json:"web_url"`
	Homepage          string `json:"homepage"`
	URL               string `json:"url"`
}

// setGitLabRepo fills e's repository fields from a payload's project and repository.
func (e *Event) setGitLabRepo(project, repo *glProject) {
	var httpURLs []string
	for _, r := range []*glProject{project, repo} {
		if r == nil {
			continue
		}
		e.RepoName = firstNonEmpty(e.RepoName, r.PathWithNamespace)
		e.addRepoURLs(r.GitHTTPURL, r.HTTPURL, r.GitSSHURL, r.SSHURL, r.WebURL, r.Homepage, r.URL)
		httpURLs = append(httpURLs, r.GitHTTPURL, r.HTTPURL)
	}
	e.setCloneURL(append(httpURLs, e.RepoURLs...)...)
	if e.RepoName == "" {
		for _, u := range e.RepoURLs {
			if e.RepoName = repoPath(u); e.RepoName != "" {
				break
			}
		}
	}
}

// glCommit is a commit of GitLab's and Codeup's push payloads.
type glCommit struct {
	ID        string    `json:"id"`
	Message   string    `json:"message"`
	URL       string    `json:"url"`
	Timestamp timestamp `json:"timestamp"`
	Author    struct {
		Name string `json:"name"`
	} `json:"author"`
	Added    *[]string `json:"added"` // nil when the host sends no lists
	Modified *[]string `json:"modified"`
	Removed  *[]string `json:"removed"`
}

// commit converts c.
func (c glCommit) commit() Commit {
	return Commit{
		ID: c.ID, Message: c.Message, URL: c.URL, Timestamp: c.Timestamp.Time, Author: c.Author.Name,
		Added: deref(c.Added), Modified: deref(c.Modified), Removed: deref(c.Removed),
	}
}

// listed reports whether the host sent any of c's file lists.
func (c glCommit) listed() bool { return listed(c.Added, c.Modified, c.Removed) }

// glPush is GitLab's and Codeup's push and tag push payload.
type glPush struct {
	ObjectKind        string     `json:"object_kind"`
	Ref               string     `json:"ref"`
	Before            string     `json:"before"`
	After             string     `json:"after"`
	UserName          string     `json:"user_name"`
	UserUsername      string     `json:"user_username"`
	Project           *glProject `json:"project"`
	Repository        *glProject `json:"repository"`
	Commits           []glCommit `json:"commits"`
	TotalCommitsCount *int       `json:"total_commits_count"`
}

// parseGLPush reads a GitLab or Codeup push or tag push.
func parseGLPush(e *Event, body []byte) error {
	var p glPush
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.Ref == "" {
		return fmt.Errorf("%w: the push names no ref", ErrInvalidPayload)
	}
	e.setRef(p.Ref)
	e.Before, e.After = p.Before, p.After
	e.setCreatedDeleted()
	e.setGitLabRepo(p.Project, p.Repository)
	e.Pusher = firstNonEmpty(p.UserUsername, p.UserName)
	addPushCommits(e, p.Commits)
	e.CommitsTruncated = p.TotalCommitsCount != nil && *p.TotalCommitsCount > len(p.Commits)
	e.setHeadCommit()
	return nil
}

// glMergeRequest is GitLab's and Codeup's merge request payload.
type glMergeRequest struct {
	User *struct {
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"user"`
	Project          *glProject `json:"project"`
	Repository       *glProject `json:"repository"`
	ObjectAttributes *struct {
		IID          int    `json:"iid"`
		Title        string `json:"title"`
		URL          string `json:"url"`
		Action       string `json:"action"`
		SourceBranch string `json:"source_branch"`
		TargetBranch string `json:"target_branch"`
		OldRev       string `json:"oldrev"`
		LastCommit   *struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

// parseGLMergeRequest reads a GitLab or Codeup merge request event.
func parseGLMergeRequest(e *Event, body []byte) error {
	var p glMergeRequest
	if err := decode(body, &p); err != nil {
		return err
	}
	a := p.ObjectAttributes
	if a == nil {
		return fmt.Errorf("%w: the merge request event has no object_attributes", ErrInvalidPayload)
	}
	pr := &PullRequest{
		Number: a.IID, Action: a.Action, Title: a.Title, URL: a.URL,
		SourceBranch: a.SourceBranch, TargetBranch: a.TargetBranch,
	}
	if a.LastCommit != nil {
		pr.HeadSHA = a.LastCommit.ID
	}
	e.setPullRequest(pr, fmt.Sprintf("refs/merge-requests/%d/head", pr.Number))
	e.Before, e.After = a.OldRev, pr.HeadSHA
	e.setGitLabRepo(p.Project, p.Repository)
	if p.User != nil {
		e.Pusher = firstNonEmpty(p.User.Username, p.User.Name)
	}
	return nil
}

// parseGLSystemHook reads a GitLab system hook by its object_kind: push, tag_push and
// merge_request are read as the project hooks are, anything else is Kind other.
func parseGLSystemHook(e *Event, body []byte) error {
	var p struct {
		ObjectKind string `json:"object_kind"`
		EventName  string `json:"event_name"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	switch kind := firstNonEmpty(p.ObjectKind, p.EventName); kind {
	case "push", "tag_push":
		return parseGLPush(e, body)
	case "merge_request":
		return parseGLMergeRequest(e, body)
	}
	return nil
}

// gitlabParser returns the reader of GitLab's or Codeup's event raw, nil for events that are
// Kind other.
func gitlabParser(raw string) func(*Event, []byte) error {
	switch strings.TrimSpace(raw) {
	case "Push Hook", "Tag Push Hook":
		return parseGLPush
	case "Merge Request Hook":
		return parseGLMergeRequest
	case "System Hook":
		return parseGLSystemHook
	}
	return nil
}
