package githost

import "fmt"

// ghCommit is a commit of GitHub's and Gitea's push payloads.
type ghCommit struct {
	ID        string    `json:"id"`
	Message   string    `json:"message"`
	URL       string    `json:"url"`
	Timestamp timestamp `json:"timestamp"`
	Author    struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"author"`
	Added    *[]string `json:"added"` // nil when the host sends no lists
	Modified *[]string `json:"modified"`
	Removed  *[]string `json:"removed"`
}

// commit converts c.
func (c ghCommit) commit() Commit {
	return Commit{
		ID: c.ID, Message: c.Message, URL: c.URL, Timestamp: c.Timestamp.Time,
		Author: firstNonEmpty(c.Author.Name, c.Author.Username),
		Added:  deref(c.Added), Modified: deref(c.Modified), Removed: deref(c.Removed),
	}
}

// listed reports whether the host sent any of c's file lists.
func (c ghCommit) listed() bool { return listed(c.Added, c.Modified, c.Removed) }

// ghRepo is the repository of GitHub's, Gitea's and Gogs' payloads.
type ghRepo struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
	HTMLURL  string `json:"html_url"`
	GitURL   string `json:"git_url"`
}

// setRepo fills e's repository fields from r.
func (e *Event) setRepo(r *ghRepo) {
	if r == nil {
		return
	}
	e.RepoName = firstNonEmpty(r.FullName, repoPath(r.HTMLURL), repoPath(r.CloneURL))
	e.addRepoURLs(r.CloneURL, r.SSHURL, r.HTMLURL, r.GitURL)
	e.setCloneURL(r.CloneURL, r.SSHURL, r.HTMLURL)
}

// ghUser is a user of GitHub's, Gitea's and Gogs' payloads.
type ghUser struct {
	Login    string `json:"login"`
	Username string `json:"username"`
	Name     string `json:"name"`
}

// name returns the user's login, else their name.
func (u *ghUser) name() string {
	if u == nil {
		return ""
	}
	return firstNonEmpty(u.Login, u.Username, u.Name)
}

// ghPush is GitHub's, Gitea's and Gogs' push payload.
type ghPush struct {
	Ref        string     `json:"ref"`
	Before     string     `json:"before"`
	After      string     `json:"after"`
	Created    bool       `json:"created"`
	Deleted    bool       `json:"deleted"`
	Commits    []ghCommit `json:"commits"`
	HeadCommit *ghCommit  `json:"head_commit"`
	Repository *ghRepo    `json:"repository"`
	Pusher     *ghUser    `json:"pusher"`
	Sender     *ghUser    `json:"sender"`
}

// parseGHPush reads a GitHub, Gitea or Gogs push.
func parseGHPush(e *Event, body []byte) error {
	var p ghPush
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.Ref == "" {
		return fmt.Errorf("%w: the push names no ref", ErrInvalidPayload)
	}
	e.setRef(p.Ref)
	e.Before, e.After = p.Before, p.After
	e.Created, e.Deleted = p.Created, p.Deleted
	e.setCreatedDeleted()
	e.setRepo(p.Repository)
	e.Pusher = firstNonEmpty(p.Pusher.name(), p.Sender.name())
	addPushCommits(e, p.Commits)
	if p.HeadCommit != nil && p.HeadCommit.ID != "" {
		c := p.HeadCommit.commit()
		e.HeadCommit = &c
	}
	e.setHeadCommit()
	return nil
}

// ghBranch is the head or base of a GitHub or Gitea pull request.
type ghBranch struct {
	Ref string `json:"ref"`
	SHA string `json:"sha"`
}

// ghPullRequest is GitHub's, Gitea's and Gogs' pull_request payload.
type ghPullRequest struct {
	Action      string  `json:"action"`
	Number      int     `json:"number"`
	Before      string  `json:"before"`
	After       string  `json:"after"`
	Repository  *ghRepo `json:"repository"`
	Sender      *ghUser `json:"sender"`
	PullRequest *struct {
		Number     int       `json:"number"`
		Title      string    `json:"title"`
		HTMLURL    string    `json:"html_url"`
		Head       *ghBranch `json:"head"`
		Base       *ghBranch `json:"base"`
		HeadBranch string    `json:"head_branch"` // Gogs
		BaseBranch string    `json:"base_branch"` // Gogs
	} `json:"pull_request"`
}

// parseGHPullRequest reads a GitHub, Gitea or Gogs pull request event.
func parseGHPullRequest(e *Event, body []byte) error {
	var p ghPullRequest
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.PullRequest == nil {
		return fmt.Errorf("%w: the event has no pull_request object", ErrInvalidPayload)
	}
	pr := &PullRequest{
		Number:       p.Number,
		Action:       p.Action,
		Title:        p.PullRequest.Title,
		URL:          p.PullRequest.HTMLURL,
		SourceBranch: p.PullRequest.HeadBranch,
		TargetBranch: p.PullRequest.BaseBranch,
	}
	if pr.Number == 0 {
		pr.Number = p.PullRequest.Number
	}
	if h := p.PullRequest.Head; h != nil {
		pr.SourceBranch, pr.HeadSHA = firstNonEmpty(h.Ref, pr.SourceBranch), h.SHA
	}
	if b := p.PullRequest.Base; b != nil {
		pr.TargetBranch = firstNonEmpty(b.Ref, pr.TargetBranch)
	}
	e.setPullRequest(pr, fmt.Sprintf("refs/pull/%d/head", pr.Number))
	e.Before, e.After = p.Before, firstNonEmpty(pr.HeadSHA, p.After)
	e.setRepo(p.Repository)
	e.Pusher = p.Sender.name()
	return nil
}

// parseGHPing reads a GitHub ping: only the repository, when the hook belongs to one.
func parseGHPing(e *Event, body []byte) error {
	var p struct {
		Repository *ghRepo `json:"repository"`
		Sender     *ghUser `json:"sender"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	e.Kind = KindPing
	e.setRepo(p.Repository)
	e.Pusher = p.Sender.name()
	return nil
}

// githubParser returns the reader of GitHub's event raw, nil for events that are Kind other.
func githubParser(raw string) func(*Event, []byte) error {
	switch raw {
	case "push":
		return parseGHPush
	case "pull_request":
		return parseGHPullRequest
	case "ping":
		return parseGHPing
	}
	return nil
}

// giteaParser returns the reader of Gitea's, Forgejo's or Gogs' event raw, nil for events that
// are Kind other. Gitea names every pull request change "pull_request" (the action differs);
// X-Gitea-Event-Type's finer names such as pull_request_sync are accepted too.
func giteaParser(raw string) func(*Event, []byte) error {
	switch raw {
	case "push":
		return parseGHPush
	case "pull_request", "pull_request_sync":
		return parseGHPullRequest
	}
	return nil
}
