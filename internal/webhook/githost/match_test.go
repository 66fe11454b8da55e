package githost

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/pipeline"
)

// push returns a branch push to acme/app on git.example.com with one commit changing files.
func push(branch string, files ...string) *Event {
	return &Event{
		Provider: GitHub, Kind: KindPush, RawEvent: "push",
		RepoURLs: []string{"https://git.example.com/acme/app.git", "git@git.example.com:acme/app.git"},
		CloneURL: "https://git.example.com/acme/app.git",
		Ref:      "refs/heads/" + branch, Branch: branch, Before: "a1", After: "b2",
		Commits: []Commit{{ID: "b2", Modified: files}},
	}
}

// tag returns a tag push to acme/app.
func tag(name string) *Event {
	e := push("x")
	e.Kind, e.Ref, e.Branch, e.Tag = KindTag, "refs/tags/"+name, "", name
	e.Commits, e.Before, e.Created = nil, ZeroSHA, true
	return e
}

// pr returns a pull request event to acme/app.
func pr(action, target string) *Event {
	e := push("feature")
	e.Kind, e.RawEvent, e.Ref, e.Commits = KindPullRequest, "pull_request", "refs/pull/1/head", nil
	e.PullRequest = &PullRequest{Number: 1, Action: action, SourceBranch: "feature", TargetBranch: target, HeadSHA: "b2"}
	return e
}

// with applies f to e and returns it.
func with(e *Event, f func(*Event)) *Event { f(e); return e }

func TestMatch(t *testing.T) {
	t.Parallel()
	const app = "https://git.example.com/acme/app.git"
	src := func(f func(*pipeline.Source)) *pipeline.Source {
		s := &pipeline.Source{URL: app, Events: []string{"push", "tag"}}
		if f != nil {
			f(s)
		}
		return s
	}
	cases := []struct {
		name   string
		src    *pipeline.Source
		e      *Event
		ok     bool
		reason string // exact when ok is false; a substring of the note when ok is true
	}{
		{"any branch by default", src(nil), push("dev", "a"), true, ""},
		{"source by ssh url", src(func(s *pipeline.Source) { s.URL = "git@git.example.com:acme/app" }), push("dev", "a"), true, ""},
		{"nil events default to push", src(func(s *pipeline.Source) { s.Events = nil }), push("dev", "a"), true, ""},
		{"no source", nil, push("dev"), false, "the pipeline has no source, so Git host events do not start it"},
		{"ping", src(nil), &Event{Kind: KindPing, RawEvent: "ping"}, false, "ping event"},
		{"other", src(nil), &Event{Provider: GitHub, Kind: KindOther, RawEvent: "issues"}, false,
			`github "issues" events do not start runs (only push, tag and pull request events do)`},
		{"other repository", src(nil), with(push("main"), func(e *Event) {
			e.RepoURLs, e.CloneURL = []string{"https://git.example.com/acme/other.git"}, "https://git.example.com/acme/other.git"
		}), false, "the event's repository git.example.com/acme/other is not source.url git.example.com/acme/app"},
		{"no repository", src(nil), with(push("main"), func(e *Event) { e.RepoURLs, e.CloneURL = nil, "" }), false,
			"the event names no repository, so it cannot be matched to source.url git.example.com/acme/app"},
		{"empty source url", src(func(s *pipeline.Source) { s.URL = "" }), push("main"), false,
			"source.url is empty, so no repository's events match it"},
		{"push events off", src(func(s *pipeline.Source) { s.Events = []string{"tag"} }), push("main", "a"), false,
			"push events are off: add push to source.events"},
		{"branch matches", src(func(s *pipeline.Source) { s.Branches = []string{"main", "release/*"} }), push("release/1.0", "a"), true, ""},
		{"branch does not match", src(func(s *pipeline.Source) { s.Branches = []string{"main", "release/*"} }), push("dev", "a"), false,
			`branch "dev" matches none of source.branches [main release/*]`},
		{"branch glob is per segment", src(func(s *pipeline.Source) { s.Branches = []string{"release/*"} }), push("release/1/2", "a"), false,
			`branch "release/1/2" matches none of source.branches [release/*]`},
		{"empty branches = none", src(func(s *pipeline.Source) { s.Branches = []string{} }), push("main", "a"), false,
			`branch "main" matches none of source.branches []`},
		{"deleted branch", src(nil), with(push("main"), func(e *Event) { e.Deleted, e.After, e.Commits = true, ZeroSHA, nil }), false,
			`branch "main" was deleted`},
		{"not a branch", src(nil), with(push(""), func(e *Event) { e.Ref = "refs/notes/commits" }), false,
			`ref "refs/notes/commits" is neither a branch nor a tag`},
		{"no commits", src(nil), with(push("main"), func(e *Event) { e.Commits = nil }), false, "the push has no commits"},
		{"new branch without commits", src(nil), with(push("main"), func(e *Event) { e.Commits, e.Created, e.Before = nil, true, ZeroSHA }), true, ""},
		{"new branch without commits and paths", src(func(s *pipeline.Source) { s.Paths = []string{"src/**"} }),
			with(push("main"), func(e *Event) { e.Commits, e.Created, e.Before = nil, true, ZeroSHA }), true, "the new branch brings no commits"},
		{"host lists no commits", src(nil), with(push("main"), func(e *Event) {
			e.Provider, e.Commits, e.CommitsOmitted, e.FilesOmitted = BitbucketServer, nil, true, true
		}), true, ""},
		{"paths match", src(func(s *pipeline.Source) { s.Paths = []string{"src/**"} }), push("main", "docs/a.md", "src/x/y.go"), true, ""},
		{"paths do not match", src(func(s *pipeline.Source) { s.Paths = []string{"src/**"} }), push("main", "docs/a.md"), false,
			"no changed file matches source.paths [src/**]"},
		{"paths with a host without file lists", src(func(s *pipeline.Source) { s.Paths = []string{"src/**"} }),
			with(push("main"), func(e *Event) { e.Provider, e.FilesOmitted = Bitbucket, true }), true,
			"source.paths [src/**] not applied: bitbucket sends no changed-file lists"},
		{"paths with a truncated commit list", src(func(s *pipeline.Source) { s.Paths = []string{"src/**"} }),
			with(push("main", "docs/a.md"), func(e *Event) { e.Provider, e.CommitsTruncated = GitLab, true }), true,
			"gitlab listed only some of the push's commits"},
		{"tag matches", src(func(s *pipeline.Source) { s.Tags = []string{"v*"} }), tag("v1.0"), true, ""},
		{"tags not set", src(nil), tag("v1.0"), false, "tag builds are off: source.tags is not set"},
		{"tag does not match", src(func(s *pipeline.Source) { s.Tags = []string{"v*"} }), tag("nightly"), false,
			`tag "nightly" matches none of source.tags [v*]`},
		{"tag events off", src(func(s *pipeline.Source) { s.Tags, s.Events = []string{"v*"}, []string{"push"} }), tag("v1"), false,
			"tag events are off: add tag to source.events"},
		{"tag deleted", src(func(s *pipeline.Source) { s.Tags = []string{"v*"} }), with(tag("v1"), func(e *Event) { e.Deleted, e.Created, e.After = true, false, ZeroSHA }), false,
			`tag "v1" was deleted`},
		{"paths do not apply to tags", src(func(s *pipeline.Source) { s.Tags, s.Paths = []string{"v*"}, []string{"src/**"} }), tag("v1"), true, ""},
		{"pull requests off by default", src(nil), pr("opened", "main"), false,
			"pull_request events are off: add pull_request to source.events"},
		{"pull request on", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }), pr("opened", "main"), true, ""},
		{"pull request new commits", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }), pr("synchronize", "main"), true, ""},
		{"gitlab merge request edit", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }),
			with(pr("update", "main"), func(e *Event) { e.Provider, e.Before = GitLab, "" }), false,
			`merge request action "update" brought no new commits`},
		{"gitlab merge request new commits", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }),
			with(pr("update", "main"), func(e *Event) { e.Provider, e.Before = GitLab, "a0" }), true, ""},
		{"pull request closed", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }), pr("closed", "main"), false,
			`pull request action "closed" does not start runs (only opening, reopening and new commits do)`},
		{"pull request target branch", src(func(s *pipeline.Source) {
			s.Events, s.Branches = []string{"pull_request"}, []string{"main"}
		}), pr("opened", "main"), true, ""},
		{"pull request target branch does not match", src(func(s *pipeline.Source) {
			s.Events, s.Branches = []string{"pull_request"}, []string{"main"}
		}), pr("opened", "dev"), false, `pull request target branch "dev" matches none of source.branches [main]`},
		{"pull request with paths", src(func(s *pipeline.Source) {
			s.Events, s.Paths = []string{"pull_request"}, []string{"src/**"}
		}), pr("opened", "main"), true, "pull request events list no changed files"},
		{"pull request without details", src(func(s *pipeline.Source) { s.Events = []string{"pull_request"} }),
			with(pr("opened", "main"), func(e *Event) { e.PullRequest = nil }), false, "the pull request event carries no pull request"},
		{"no event", src(nil), nil, false, "no event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, reason := Match(tc.src, tc.e)
			if ok != tc.ok {
				t.Fatalf("Match = %v, %q; want %v", ok, reason, tc.ok)
			}
			switch {
			case !ok && reason != tc.reason:
				t.Errorf("reason = %q\n      want %q", reason, tc.reason)
			case ok && tc.reason == "" && reason != "":
				t.Errorf("note = %q, want none", reason)
			case ok && !strings.Contains(reason, tc.reason):
				t.Errorf("note = %q, want it to mention %q", reason, tc.reason)
			}
		})
	}
}

// TestMatchFixtures runs Match over parsed fixtures, so parsing and matching agree.
func TestMatchFixtures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file   string
		h      []string
		src    pipeline.Source
		ok     bool
		reason string
	}{
		{"github/push.json", []string{"X-GitHub-Event", "push"},
			pipeline.Source{URL: "git@github.com:binkkatal/sample_app.git", Branches: []string{"master"}, Paths: []string{"app/**"}}, true, ""},
		{"github/push.json", []string{"X-GitHub-Event", "push"},
			pipeline.Source{URL: "https://github.com/binkkatal/sample_app", Paths: []string{"lib/**"}}, false, "no changed file matches source.paths [lib/**]"},
		{"github/ping.json", []string{"X-GitHub-Event", "ping"}, pipeline.Source{URL: "https://github.com/a/b"}, false, "ping event"},
		{"gitlab/tag-event.json", []string{"X-Gitlab-Event", "Tag Push Hook"},
			pipeline.Source{URL: "https://example.com/jsmith/example", Tags: []string{"v*"}}, true, ""},
		{"gitlab/merge-request-event.json", []string{"X-Gitlab-Event", "Merge Request Hook"},
			pipeline.Source{URL: "https://example.com/gitlabhq/gitlab-test.git", Events: []string{"pull_request"}, Branches: []string{"master"}}, true, ""},
		{"codeup/push-event.json", []string{"Codeup-Event", "Push Hook"},
			pipeline.Source{URL: "git@codeup.example.com:demo/demo.git", Paths: []string{"src/**"}}, true, ""},
		{"gitea/push-event.json", []string{"X-Gitea-Event", "push"},
			pipeline.Source{URL: "http://localhost:3000/example/example", Branches: []string{"main"}}, false, `branch "master" matches none of source.branches [main]`},
		{"gogs/push-event.json", []string{"X-Gogs-Event", "push"},
			pipeline.Source{URL: "ssh://unknwon@localhost:2222/unknwon/webhooks.git"}, true, ""},
		{"bitbucket/repo-push.json", []string{"X-Event-Key", "repo:push"},
			pipeline.Source{URL: "git@bitbucket.org:team_name/repo_name.git"}, true, ""},
		{"bitbucket-server/repo-refs-changed.json", []string{"X-Event-Key", "repo:refs_changed"},
			pipeline.Source{URL: "https://server.bitbucket.local/scm/~gopher/webhook-test.git"}, false, `branch "feature/wip" was deleted`},
	}
	for _, tc := range cases {
		h := hdr(tc.h...)
		p, _ := Detect(h)
		e, err := Parse(p, h, fixture(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		ok, reason := Match(&tc.src, e)
		if ok != tc.ok || (!ok && reason != tc.reason) {
			t.Errorf("%s with %+v: Match = %v, %q; want %v, %q", tc.file, tc.src, ok, reason, tc.ok, tc.reason)
		}
	}
}
