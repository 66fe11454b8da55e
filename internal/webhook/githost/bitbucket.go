package githost

import (
	"fmt"
	"strings"
)

// href is Bitbucket's link object.
type href struct {
	Href string `json:"href"`
	Name string `json:"name"`
}

// bbUser is a user of Bitbucket Cloud's payloads.
type bbUser struct {
	Nickname    string `json:"nickname"`
	DisplayName string `json:"display_name"`
	Username    string `json:"username"`
}

// name returns the user's nickname, else their display name.
func (u *bbUser) name() string {
	if u == nil {
		return ""
	}
	return firstNonEmpty(u.Nickname, u.Username, u.DisplayName)
}

// bbRepo is the repository of Bitbucket Cloud's payloads. They carry no clone URL.
type bbRepo struct {
	FullName string `json:"full_name"`
	Links    struct {
		HTML href `json:"html"`
	} `json:"links"`
}

// setBitbucketRepo fills e's repository fields from r, adding the clone URLs Bitbucket Cloud
// gives every repository.
func (e *Event) setBitbucketRepo(r *bbRepo) {
	if r == nil {
		return
	}
	e.RepoName = firstNonEmpty(r.FullName, repoPath(r.Links.HTML.Href))
	var https, ssh string
	if r.FullName != "" {
		https = "https://bitbucket.org/" + r.FullName + ".git"
		ssh = "git@bitbucket.org:" + r.FullName + ".git"
	}
	e.addRepoURLs(https, ssh, r.Links.HTML.Href)
	e.setCloneURL(https, r.Links.HTML.Href)
}

// bbCommit is a commit of Bitbucket Cloud's push payload.
type bbCommit struct {
	Hash    string    `json:"hash"`
	Message string    `json:"message"`
	Date    timestamp `json:"date"`
	Author  *struct {
		Raw  string  `json:"raw"`
		User *bbUser `json:"user"`
		bbUser
	} `json:"author"`
	Links struct {
		HTML href `json:"html"`
	} `json:"links"`
}

// commit converts c. Bitbucket Cloud lists no changed files.
func (c *bbCommit) commit() Commit {
	out := Commit{ID: c.Hash, Message: c.Message, Timestamp: c.Date.Time, URL: c.Links.HTML.Href}
	if a := c.Author; a != nil {
		raw := a.Raw
		if i := strings.Index(raw, "<"); i >= 0 {
			raw = strings.TrimSpace(raw[:i])
		}
		var user string
		if a.User != nil {
			user = a.User.DisplayName
		}
		out.Author = firstNonEmpty(user, a.DisplayName, raw, a.Nickname)
	}
	return out
}

// bbRef is the old or new state of a ref in Bitbucket Cloud's push payload.
type bbRef struct {
	Type   string    `json:"type"` // "branch", "tag", "annotated_tag"
	Name   string    `json:"name"`
	Target *bbCommit `json:"target"`
}

// fullRef returns the ref's full name.
func (r *bbRef) fullRef() string {
	if r.Type == "branch" || r.Type == "named_branch" {
		return "refs/heads/" + r.Name
	}
	if strings.Contains(r.Type, "tag") {
		return "refs/tags/" + r.Name
	}
	return r.Name
}

// parseBBPush reads Bitbucket Cloud's repo:push: its first change.
func parseBBPush(e *Event, body []byte) error {
	var p struct {
		Actor      *bbUser `json:"actor"`
		Repository *bbRepo `json:"repository"`
		Push       *struct {
			Changes []struct {
				New       *bbRef     `json:"new"`
				Old       *bbRef     `json:"old"`
				Created   bool       `json:"created"`
				Closed    bool       `json:"closed"`
				Truncated bool       `json:"truncated"`
				Commits   []bbCommit `json:"commits"`
			} `json:"changes"`
		} `json:"push"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.Push == nil || len(p.Push.Changes) == 0 {
		return fmt.Errorf("%w: the push lists no changes", ErrInvalidPayload)
	}
	ch := p.Push.Changes[0]
	ref := ch.New
	if ref == nil {
		ref = ch.Old
	}
	if ref == nil {
		return fmt.Errorf("%w: the push's change has neither a new nor an old ref", ErrInvalidPayload)
	}
	e.setRef(ref.fullRef())
	e.Before, e.After = ZeroSHA, ZeroSHA
	if ch.Old != nil && ch.Old.Target != nil {
		e.Before = ch.Old.Target.Hash
	}
	if ch.New != nil && ch.New.Target != nil {
		e.After = ch.New.Target.Hash
		c := ch.New.Target.commit()
		e.HeadCommit = &c
	}
	e.Created = ch.Created || ch.Old == nil
	e.Deleted = ch.Closed || ch.New == nil
	e.setCreatedDeleted()
	e.setBitbucketRepo(p.Repository)
	e.Pusher = p.Actor.name()
	for i := range ch.Commits {
		e.Commits = append(e.Commits, ch.Commits[i].commit())
	}
	e.FilesOmitted = true
	e.CommitsTruncated = ch.Truncated
	return nil
}

// parseBBPullRequest reads Bitbucket Cloud's pullrequest:* events; the action is the part of
// the event key after "pullrequest:".
func parseBBPullRequest(e *Event, body []byte) error {
	var p struct {
		Actor       *bbUser `json:"actor"`
		Repository  *bbRepo `json:"repository"`
		PullRequest *struct {
			ID     int    `json:"id"`
			Title  string `json:"title"`
			Source struct {
				Branch struct {
					Name string `json:"name"`
				} `json:"branch"`
				Commit struct {
					Hash string `json:"hash"`
				} `json:"commit"`
			} `json:"source"`
			Destination struct {
				Branch struct {
					Name string `json:"name"`
				} `json:"branch"`
				Repository *bbRepo `json:"repository"`
			} `json:"destination"`
			Links struct {
				HTML href `json:"html"`
			} `json:"links"`
		} `json:"pullrequest"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.PullRequest == nil {
		return fmt.Errorf("%w: the event has no pullrequest object", ErrInvalidPayload)
	}
	q := p.PullRequest
	pr := &PullRequest{
		Number: q.ID, Action: strings.TrimPrefix(e.RawEvent, "pullrequest:"), Title: q.Title,
		SourceBranch: q.Source.Branch.Name, TargetBranch: q.Destination.Branch.Name,
		HeadSHA: q.Source.Commit.Hash, URL: q.Links.HTML.Href,
	}
	e.setPullRequest(pr, "refs/heads/"+pr.SourceBranch)
	e.After = pr.HeadSHA
	repo := p.Repository
	if repo == nil {
		repo = q.Destination.Repository
	}
	e.setBitbucketRepo(repo)
	e.Pusher = p.Actor.name()
	return nil
}

// bitbucketParser returns the reader of Bitbucket Cloud's event raw, nil for events that are
// Kind other. Bitbucket Cloud has no ping event.
func bitbucketParser(raw string) func(*Event, []byte) error {
	switch {
	case raw == "repo:push":
		return parseBBPush
	case strings.HasPrefix(raw, "pullrequest:") && !strings.HasPrefix(raw, "pullrequest:comment_"):
		return parseBBPullRequest
	}
	return nil
}

// bbsUser is a user of Bitbucket Server's payloads.
type bbsUser struct {
	Name        string `json:"name"`
	Slug        string `json:"slug"`
	DisplayName string `json:"displayName"`
}

// name returns the user's name, else slug or display name.
func (u *bbsUser) name() string {
	if u == nil {
		return ""
	}
	return firstNonEmpty(u.Name, u.Slug, u.DisplayName)
}

// bbsRepo is the repository of Bitbucket Server's payloads.
type bbsRepo struct {
	Slug    string `json:"slug"`
	Project *struct {
		Key string `json:"key"`
	} `json:"project"`
	Links struct {
		Clone []href `json:"clone"`
		Self  []href `json:"self"`
	} `json:"links"`
}

// setBitbucketServerRepo fills e's repository fields from r; the name is PROJECT/slug.
func (e *Event) setBitbucketServerRepo(r *bbsRepo) {
	if r == nil {
		return
	}
	e.RepoName = r.Slug
	if r.Project != nil && r.Project.Key != "" && r.Slug != "" {
		e.RepoName = r.Project.Key + "/" + r.Slug
	}
	var clone []string
	for _, l := range r.Links.Clone {
		clone = append(clone, l.Href)
	}
	e.addRepoURLs(clone...)
	for _, l := range r.Links.Self {
		e.addRepoURLs(l.Href)
	}
	e.setCloneURL(clone...)
}

// parseBBSRefsChanged reads Bitbucket Server's repo:refs_changed: its first change. Bitbucket
// Server lists no commits.
func parseBBSRefsChanged(e *Event, body []byte) error {
	var p struct {
		Actor      *bbsUser `json:"actor"`
		Repository *bbsRepo `json:"repository"`
		Changes    []struct {
			Ref *struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			} `json:"ref"`
			RefID    string `json:"refId"`
			FromHash string `json:"fromHash"`
			ToHash   string `json:"toHash"`
			Type     string `json:"type"` // ADD, UPDATE, DELETE
		} `json:"changes"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	if len(p.Changes) == 0 {
		return fmt.Errorf("%w: the push lists no changes", ErrInvalidPayload)
	}
	ch := p.Changes[0]
	ref := ch.RefID
	if ch.Ref != nil {
		ref = firstNonEmpty(ch.Ref.ID, ref)
	}
	if ref == "" {
		return fmt.Errorf("%w: the push's change names no ref", ErrInvalidPayload)
	}
	e.setRef(ref)
	e.Before, e.After = ch.FromHash, ch.ToHash
	e.Created = strings.EqualFold(ch.Type, "ADD")
	e.Deleted = strings.EqualFold(ch.Type, "DELETE")
	e.setCreatedDeleted()
	e.setBitbucketServerRepo(p.Repository)
	e.Pusher = p.Actor.name()
	e.CommitsOmitted, e.FilesOmitted = true, true
	return nil
}

// parseBBSPullRequest reads Bitbucket Server's pr:* events; the action is the part of the
// event key after "pr:".
func parseBBSPullRequest(e *Event, body []byte) error {
	type bbsRef struct {
		ID           string   `json:"id"`
		DisplayID    string   `json:"displayId"`
		LatestCommit string   `json:"latestCommit"`
		Repository   *bbsRepo `json:"repository"`
	}
	var p struct {
		Actor       *bbsUser `json:"actor"`
		PullRequest *struct {
			ID      int     `json:"id"`
			Title   string  `json:"title"`
			FromRef *bbsRef `json:"fromRef"`
			ToRef   *bbsRef `json:"toRef"`
			Links   struct {
				Self []href `json:"self"`
			} `json:"links"`
		} `json:"pullRequest"`
	}
	if err := decode(body, &p); err != nil {
		return err
	}
	q := p.PullRequest
	if q == nil || q.FromRef == nil || q.ToRef == nil {
		return fmt.Errorf("%w: the event has no pullRequest with fromRef and toRef", ErrInvalidPayload)
	}
	pr := &PullRequest{
		Number: q.ID, Action: strings.TrimPrefix(e.RawEvent, "pr:"), Title: q.Title,
		SourceBranch: firstNonEmpty(q.FromRef.DisplayID, strings.TrimPrefix(q.FromRef.ID, "refs/heads/")),
		TargetBranch: firstNonEmpty(q.ToRef.DisplayID, strings.TrimPrefix(q.ToRef.ID, "refs/heads/")),
		HeadSHA:      q.FromRef.LatestCommit,
	}
	if len(q.Links.Self) > 0 {
		pr.URL = q.Links.Self[0].Href
	}
	e.setPullRequest(pr, fmt.Sprintf("refs/pull-requests/%d/from", pr.Number))
	e.After = pr.HeadSHA
	e.setBitbucketServerRepo(q.ToRef.Repository)
	e.Pusher = p.Actor.name()
	return nil
}

// parseBBSPing reads Bitbucket Server's "Test connection" request.
func parseBBSPing(e *Event, body []byte) error {
	var p map[string]any
	if err := decode(body, &p); err != nil {
		return err
	}
	e.Kind = KindPing
	return nil
}

// bitbucketServerParser returns the reader of Bitbucket Server's event raw, nil for events
// that are Kind other.
func bitbucketServerParser(raw string) func(*Event, []byte) error {
	switch {
	case raw == "repo:refs_changed":
		return parseBBSRefsChanged
	case raw == "diagnostics:ping":
		return parseBBSPing
	case strings.HasPrefix(raw, "pr:") && !strings.HasPrefix(raw, "pr:comment:") &&
		!strings.HasPrefix(raw, "pr:reviewer:"):
		return parseBBSPullRequest
	}
	return nil
}
