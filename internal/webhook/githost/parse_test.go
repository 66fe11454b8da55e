package githost

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// fixture reads testdata/fixtures/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// giteaHeaders are the headers Gitea sends with a push (it adds Gogs' and GitHub's).
func giteaHeaders(forgejo bool) http.Header {
	h := hdr(
		"X-Gitea-Event", "push", "X-Gitea-Event-Type", "push", "X-Gitea-Delivery", "d-gitea",
		"X-Gogs-Event", "push", "X-Gogs-Delivery", "d-gitea",
		"X-GitHub-Event", "push", "X-GitHub-Delivery", "d-gitea",
	)
	if forgejo {
		h.Set("X-Forgejo-Event", "push")
		h.Set("X-Forgejo-Delivery", "d-gitea")
	}
	return h
}

// parseCase is one request and the Event it must give. want holds every field but Commits and
// HeadCommit, which the other fields check.
type parseCase struct {
	name        string
	file        string // under testdata/fixtures, or "" when body is set
	body        string
	header      http.Header
	want        Event
	commits     int
	firstMsg    string
	firstAuthor string
	firstTime   string   // RFC 3339, "" when the payload gives none
	files       []string // ChangedFiles
	head        string   // HeadCommit.ID, "" for none
}

var zero = ZeroSHA

var parseCases = []parseCase{
	{
		name: "github push", file: "github/push.json",
		header: hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "d-gh-1"),
		want: Event{
			Provider: GitHub, Kind: KindPush, RawEvent: "push", DeliveryID: "d-gh-1",
			RepoName: "binkkatal/sample_app",
			RepoURLs: []string{
				"https://github.com/binkkatal/sample_app.git", "git@github.com:binkkatal/sample_app.git",
				"https://github.com/binkkatal/sample_app", "git://github.com/binkkatal/sample_app.git",
			},
			CloneURL: "https://github.com/binkkatal/sample_app.git",
			Ref:      "refs/heads/master", Branch: "master",
			Before: "737d38c599c1b2991664dfc6155d6bf516fcce36", After: "fd489864e7642b48eaad6e3f155c10e46810ec72",
			Pusher: "binkkatal",
		},
		commits: 1, firstMsg: "test a push event", firstAuthor: "binkkatal", firstTime: "2018-06-29T19:34:13+05:30",
		files: []string{".razorops.yaml", "app/controllers/application_controller.rb"},
		head:  "fd489864e7642b48eaad6e3f155c10e46810ec72",
	},
	{
		name: "github ping", file: "github/ping.json",
		header: hdr("X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-gh-ping"),
		want:   Event{Provider: GitHub, Kind: KindPing, RawEvent: "ping", DeliveryID: "d-gh-ping"},
	},
	{
		name: "github pull request", file: "github/pull-request.json",
		header: hdr("X-GitHub-Event", "pull_request", "X-GitHub-Delivery", "d-gh-pr"),
		want: Event{
			Provider: GitHub, Kind: KindPullRequest, RawEvent: "pull_request", DeliveryID: "d-gh-pr",
			RepoName: "baxterthehacker/public-repo",
			RepoURLs: []string{
				"https://github.com/baxterthehacker/public-repo.git", "git@github.com:baxterthehacker/public-repo.git",
				"https://github.com/baxterthehacker/public-repo", "git://github.com/baxterthehacker/public-repo.git",
			},
			CloneURL: "https://github.com/baxterthehacker/public-repo.git",
			Ref:      "refs/pull/1/head", Branch: "changes",
			After:  "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
			Pusher: "baxterthehacker",
			PullRequest: &PullRequest{
				Number: 1, Action: "opened", Title: "Update the README with new information",
				SourceBranch: "changes", TargetBranch: "master",
				HeadSHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
				URL:     "https://github.com/baxterthehacker/public-repo/pull/1",
			},
		},
	},
	{
		name: "gitlab push", file: "gitlab/push-event.json",
		header: hdr("X-Gitlab-Event", "Push Hook", "X-Gitlab-Event-UUID", "d-gl-1"),
		want: Event{
			Provider: GitLab, Kind: KindPush, RawEvent: "Push Hook", DeliveryID: "d-gl-1",
			RepoName: "mike/diaspora",
			RepoURLs: []string{
				"http://example.com/mike/diaspora.git", "git@example.com:mike/diaspora.git", "http://example.com/mike/diaspora",
			},
			CloneURL: "http://example.com/mike/diaspora.git",
			Ref:      "refs/heads/master", Branch: "master",
			Before: "95790bf891e76fee5e1747ab589903a6a1f80f22", After: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
			Pusher:           "John Smith",
			CommitsTruncated: true, // total_commits_count 4, two listed
		},
		commits: 2, firstMsg: "Update Catalan translation to e38cb41.", firstAuthor: "Jordi Mallach", firstTime: "2011-12-12T14:27:31+02:00",
		files: []string{"CHANGELOG", "app/controller/application.rb"},
		head:  "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
	},
	{
		name: "gitlab tag push", file: "gitlab/tag-event.json",
		header: hdr("X-Gitlab-Event", "Tag Push Hook", "X-Gitlab-Event-UUID", "d-gl-tag"),
		want: Event{
			Provider: GitLab, Kind: KindTag, RawEvent: "Tag Push Hook", DeliveryID: "d-gl-tag",
			RepoName: "jsmith/example",
			RepoURLs: []string{
				"http://example.com/jsmith/example.git", "git@example.com:jsmith/example.git",
				"http://example.com/jsmith/example", "ssh://git@example.com/jsmith/example.git",
			},
			CloneURL: "http://example.com/jsmith/example.git",
			Ref:      "refs/tags/v1.0.0", Tag: "v1.0.0",
			Before: zero, After: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", Created: true,
			Pusher: "John Smith",
		},
	},
	{
		name: "gitlab merge request", file: "gitlab/merge-request-event.json",
		header: hdr("X-Gitlab-Event", "Merge Request Hook", "X-Gitlab-Event-UUID", "d-gl-mr"),
		want: Event{
			Provider: GitLab, Kind: KindPullRequest, RawEvent: "Merge Request Hook", DeliveryID: "d-gl-mr",
			RepoName: "gitlabhq/gitlab-test",
			RepoURLs: []string{
				"http://example.com/gitlabhq/gitlab-test.git", "git@example.com:gitlabhq/gitlab-test.git",
				"http://example.com/gitlabhq/gitlab-test",
			},
			CloneURL: "http://example.com/gitlabhq/gitlab-test.git",
			Ref:      "refs/merge-requests/1/head", Branch: "ms-viewport",
			After:  "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
			Pusher: "root",
			PullRequest: &PullRequest{
				Number: 1, Action: "open", Title: "MS-Viewport", SourceBranch: "ms-viewport", TargetBranch: "master",
				HeadSHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", URL: "http://example.com/diaspora/merge_requests/1",
			},
		},
	},
	{
		name: "codeup push", file: "codeup/push-event.json",
		header: hdr("Codeup-Event", "Push Hook"),
		want: Event{
			Provider: Codeup, Kind: KindPush, RawEvent: "Push Hook",
			RepoName: "demo/demo",
			RepoURLs: []string{
				"https://codeup.example.com/demo/demo.git", "git@codeup.example.com:demo/demo.git",
				"https://codeup.example.com/demo/demo",
			},
			CloneURL: "https://codeup.example.com/demo/demo.git",
			Ref:      "refs/heads/master", Branch: "master",
			Before: "f2e2d577fab1562a6239b82721fd9827e05fdce6", After: "eb63d0277e64684236ebf8394b919230c4b8a286",
			Pusher:       "Codeup",
			FilesOmitted: true,
		},
		commits: 2, firstMsg: "Update readme.", firstAuthor: "Codeup", firstTime: "2019-01-01T00:08:00+08:00",
		head: "eb63d0277e64684236ebf8394b919230c4b8a286",
	},
	{
		name: "gitea push", file: "gitea/push-event.json",
		header: giteaHeaders(false),
		want: Event{
			Provider: Gitea, Kind: KindPush, RawEvent: "push", DeliveryID: "d-gitea",
			RepoName: "example/example",
			RepoURLs: []string{
				"http://localhost:3000/example/example.git", "git@localhost:example/example.git",
				"http://localhost:3000/example/example",
			},
			CloneURL: "http://localhost:3000/example/example.git",
			Ref:      "refs/heads/master", Branch: "master",
			Before: zero, After: "67b56589a45103f891bdee7c0546e5d40bc02001", Created: true,
			Pusher: "example",
		},
		commits: 1, firstMsg: "example\n", firstAuthor: "example", firstTime: "2022-03-09T16:23:39+09:00", files: []string{"example"},
		head: "67b56589a45103f891bdee7c0546e5d40bc02001",
	},
	{
		name: "forgejo push", file: "gitea/push-event.json",
		header: giteaHeaders(true),
		want: Event{
			Provider: Gitea, Kind: KindPush, RawEvent: "push", DeliveryID: "d-gitea",
			RepoName: "example/example",
			RepoURLs: []string{
				"http://localhost:3000/example/example.git", "git@localhost:example/example.git",
				"http://localhost:3000/example/example",
			},
			CloneURL: "http://localhost:3000/example/example.git",
			Ref:      "refs/heads/master", Branch: "master",
			Before: zero, After: "67b56589a45103f891bdee7c0546e5d40bc02001", Created: true,
			Pusher: "example",
		},
		commits: 1, firstMsg: "example\n", firstAuthor: "example", firstTime: "2022-03-09T16:23:39+09:00", files: []string{"example"},
		head: "67b56589a45103f891bdee7c0546e5d40bc02001",
	},
	{
		name: "gogs push", file: "gogs/push-event.json",
		header: hdr("X-Gogs-Event", "push", "X-Gogs-Delivery", "d-gogs"),
		want: Event{
			Provider: Gogs, Kind: KindPush, RawEvent: "push", DeliveryID: "d-gogs",
			RepoName: "unknwon/webhooks",
			RepoURLs: []string{
				"http://localhost:3000/unknwon/webhooks.git", "ssh://unknwon@localhost:2222/unknwon/webhooks.git",
				"http://localhost:3000/unknwon/webhooks",
			},
			CloneURL: "http://localhost:3000/unknwon/webhooks.git",
			Ref:      "refs/heads/develop", Branch: "develop",
			Before: "28e1879d029cb852e4844d9c718537df08844e03", After: "bffeb74224043ba2feb48d137756c8a9331c449a",
			Pusher:       "unknwon",
			FilesOmitted: true,
		},
		commits: 1, firstMsg: "Add new feature", firstAuthor: "Unknwon", firstTime: "2017-03-13T13:52:11-04:00",
		head: "bffeb74224043ba2feb48d137756c8a9331c449a",
	},
	{
		name: "bitbucket cloud push", file: "bitbucket/repo-push.json",
		header: hdr("X-Event-Key", "repo:push", "X-Request-UUID", "d-bb", "X-Hook-UUID", "hook-1"),
		want: Event{
			Provider: Bitbucket, Kind: KindPush, RawEvent: "repo:push", DeliveryID: "d-bb",
			RepoName: "team_name/repo_name",
			RepoURLs: []string{
				"https://bitbucket.org/team_name/repo_name.git", "git@bitbucket.org:team_name/repo_name.git",
				"https://api.bitbucket.org/bitbucket/bitbucket",
			},
			CloneURL: "https://bitbucket.org/team_name/repo_name.git",
			Ref:      "refs/heads/name-of-branch", Branch: "name-of-branch",
			Before: "1e65c05c1d5171631d92438a13901ca7dae9618c", After: "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
			Pusher:       "emmap1",
			FilesOmitted: true,
		},
		commits: 1, firstMsg: "commit message\n", firstAuthor: "Emma",
		head: "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
	},
	{
		name: "bitbucket server branch deletion", file: "bitbucket-server/repo-refs-changed.json",
		header: hdr("X-Event-Key", "repo:refs_changed", "X-Request-Id", "d-bbs"),
		want: Event{
			Provider: BitbucketServer, Kind: KindPush, RawEvent: "repo:refs_changed", DeliveryID: "d-bbs",
			RepoName: "~gopher/webhook-test",
			RepoURLs: []string{
				"ssh://git@server.bitbucket.local:7999/~gopher/webhook-test.git",
				"https://server.bitbucket.local/scm/~gopher/webhook-test.git",
				"https://server.bitbucket.local/users/gopher/repos/webhook-test/browse",
			},
			CloneURL: "https://server.bitbucket.local/scm/~gopher/webhook-test.git",
			Ref:      "refs/heads/feature/wip", Branch: "feature/wip",
			Before: "32a0b8a740c2963c6f56bd8baf3dc05683d299e0", After: zero, Deleted: true,
			Pusher:         "gopher",
			CommitsOmitted: true, FilesOmitted: true,
		},
	},

	// Payloads built here, for events the fixtures lack.
	{
		name: "github tag push",
		body: `{"ref":"refs/tags/v1.2.0","before":"` + zero + `","after":"abc123","created":true,"deleted":false,
			"commits":[],"head_commit":{"id":"abc123","message":"release","author":{"name":"Ann"},"added":[],"modified":["a"],"removed":[]},
			"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git","ssh_url":"git@github.com:acme/app.git","html_url":"https://github.com/acme/app"},
			"pusher":{"name":"ann"}}`,
		header: hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "d-tag"),
		want: Event{
			Provider: GitHub, Kind: KindTag, RawEvent: "push", DeliveryID: "d-tag", RepoName: "acme/app",
			RepoURLs: []string{"https://github.com/acme/app.git", "git@github.com:acme/app.git", "https://github.com/acme/app"},
			CloneURL: "https://github.com/acme/app.git", Ref: "refs/tags/v1.2.0", Tag: "v1.2.0",
			Before: zero, After: "abc123", Created: true, Pusher: "ann",
		},
		head: "abc123",
	},
	{
		name:   "github form-encoded push",
		body:   "payload=" + url.QueryEscape(`{"ref":"refs/heads/main","before":"a","after":"b","commits":[{"id":"b","message":"m","author":{"name":"Ann"},"added":["x"]}],"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"pusher":{"name":"ann"}}`),
		header: hdr("X-GitHub-Event", "push", "Content-Type", "application/x-www-form-urlencoded"),
		want: Event{
			Provider: GitHub, Kind: KindPush, RawEvent: "push", RepoName: "acme/app",
			RepoURLs: []string{"https://github.com/acme/app.git"}, CloneURL: "https://github.com/acme/app.git",
			Ref: "refs/heads/main", Branch: "main", Before: "a", After: "b", Pusher: "ann",
		},
		commits: 1, firstMsg: "m", firstAuthor: "Ann", files: []string{"x"}, head: "b",
	},
	{
		name: "github unknown event", body: `not even json`,
		header: hdr("X-GitHub-Event", "issues", "X-GitHub-Delivery", "d-iss"),
		want:   Event{Provider: GitHub, Kind: KindOther, RawEvent: "issues", DeliveryID: "d-iss"},
	},
	{
		name: "github create event is not a second tag build", body: `{"ref":"v1","ref_type":"tag"}`,
		header: hdr("X-GitHub-Event", "create"),
		want:   Event{Provider: GitHub, Kind: KindOther, RawEvent: "create"},
	},
	{
		name: "gitea pull request synchronized",
		body: `{"action":"synchronized","number":7,"pull_request":{"number":7,"title":"Fix","html_url":"http://git.local/acme/app/pulls/7",
			"head":{"ref":"fix","sha":"f00"},"base":{"ref":"main","sha":"b00"}},
			"repository":{"full_name":"acme/app","clone_url":"http://git.local/acme/app.git","ssh_url":"git@git.local:acme/app.git","html_url":"http://git.local/acme/app"},
			"sender":{"login":"bob"}}`,
		header: hdr("X-Gitea-Event", "pull_request", "X-Gitea-Delivery", "d-gpr"),
		want: Event{
			Provider: Gitea, Kind: KindPullRequest, RawEvent: "pull_request", DeliveryID: "d-gpr", RepoName: "acme/app",
			RepoURLs: []string{"http://git.local/acme/app.git", "git@git.local:acme/app.git", "http://git.local/acme/app"},
			CloneURL: "http://git.local/acme/app.git", Ref: "refs/pull/7/head", Branch: "fix", After: "f00", Pusher: "bob",
			PullRequest: &PullRequest{Number: 7, Action: "synchronized", Title: "Fix", SourceBranch: "fix", TargetBranch: "main", HeadSHA: "f00", URL: "http://git.local/acme/app/pulls/7"},
		},
	},
	{
		name: "gogs pull request",
		body: `{"action":"opened","number":3,"pull_request":{"id":9,"number":3,"title":"Feat","head_branch":"feat","base_branch":"master","html_url":"http://gogs.local/acme/app/pulls/3"},
			"repository":{"full_name":"acme/app","clone_url":"http://gogs.local/acme/app.git","html_url":"http://gogs.local/acme/app"},
			"sender":{"login":"carl","username":"carl"}}`,
		header: hdr("X-Gogs-Event", "pull_request", "X-Gogs-Delivery", "d-gogs-pr"),
		want: Event{
			Provider: Gogs, Kind: KindPullRequest, RawEvent: "pull_request", DeliveryID: "d-gogs-pr", RepoName: "acme/app",
			RepoURLs: []string{"http://gogs.local/acme/app.git", "http://gogs.local/acme/app"},
			CloneURL: "http://gogs.local/acme/app.git", Ref: "refs/pull/3/head", Branch: "feat", Pusher: "carl",
			PullRequest: &PullRequest{Number: 3, Action: "opened", Title: "Feat", SourceBranch: "feat", TargetBranch: "master", URL: "http://gogs.local/acme/app/pulls/3"},
		},
	},
	{
		name: "gitlab system hook push",
		body: `{"object_kind":"push","event_name":"push","ref":"refs/heads/main","before":"a1","after":"b2","user_username":"dora","user_name":"Dora",
			"project":{"path_with_namespace":"acme/app","git_http_url":"https://gl.local/acme/app.git","git_ssh_url":"git@gl.local:acme/app.git","web_url":"https://gl.local/acme/app"},
			"commits":[{"id":"b2","message":"m","author":{"name":"Dora"},"added":[],"modified":["src/a.go"],"removed":[]}],"total_commits_count":1}`,
		header: hdr("X-Gitlab-Event", "System Hook"),
		want: Event{
			Provider: GitLab, Kind: KindPush, RawEvent: "System Hook", RepoName: "acme/app",
			RepoURLs: []string{"https://gl.local/acme/app.git", "git@gl.local:acme/app.git", "https://gl.local/acme/app"},
			CloneURL: "https://gl.local/acme/app.git", Ref: "refs/heads/main", Branch: "main", Before: "a1", After: "b2", Pusher: "dora",
		},
		commits: 1, firstMsg: "m", firstAuthor: "Dora", files: []string{"src/a.go"}, head: "b2",
	},
	{
		name: "codeup tag push sent with X-Codeup-Event",
		body: `{"object_kind":"tag_push","ref":"refs/tags/v2","before":"` + zero + `","after":"c3","user_name":"Codeup",
			"repository":{"git_http_url":"https://codeup.aliyun.com/acme/app.git","git_ssh_url":"git@codeup.aliyun.com:acme/app.git","homepage":"https://codeup.aliyun.com/acme/app"},"commits":[]}`,
		header: hdr("X-Codeup-Event", "Tag Push Hook", "X-Gitlab-Event", "Tag Push Hook"),
		want: Event{
			Provider: Codeup, Kind: KindTag, RawEvent: "Tag Push Hook", RepoName: "acme/app",
			RepoURLs: []string{"https://codeup.aliyun.com/acme/app.git", "git@codeup.aliyun.com:acme/app.git", "https://codeup.aliyun.com/acme/app"},
			CloneURL: "https://codeup.aliyun.com/acme/app.git", Ref: "refs/tags/v2", Tag: "v2", Before: zero, After: "c3", Created: true, Pusher: "Codeup",
		},
	},
	{
		name: "bitbucket cloud pull request",
		body: `{"actor":{"nickname":"emma","display_name":"Emma"},"repository":{"full_name":"acme/app","links":{"html":{"href":"https://bitbucket.org/acme/app"}}},
			"pullrequest":{"id":5,"title":"Add x","source":{"branch":{"name":"feature/x"},"commit":{"hash":"abc"}},"destination":{"branch":{"name":"main"},"commit":{"hash":"def"}},
			"links":{"html":{"href":"https://bitbucket.org/acme/app/pull-requests/5"}}}}`,
		header: hdr("X-Event-Key", "pullrequest:created", "X-Hook-UUID", "hook-1", "X-Request-UUID", "d-bbpr"),
		want: Event{
			Provider: Bitbucket, Kind: KindPullRequest, RawEvent: "pullrequest:created", DeliveryID: "d-bbpr", RepoName: "acme/app",
			RepoURLs: []string{"https://bitbucket.org/acme/app.git", "git@bitbucket.org:acme/app.git", "https://bitbucket.org/acme/app"},
			CloneURL: "https://bitbucket.org/acme/app.git", Ref: "refs/heads/feature/x", Branch: "feature/x", After: "abc", Pusher: "emma",
			PullRequest: &PullRequest{Number: 5, Action: "created", Title: "Add x", SourceBranch: "feature/x", TargetBranch: "main", HeadSHA: "abc", URL: "https://bitbucket.org/acme/app/pull-requests/5"},
		},
	},
	{
		name:   "bitbucket cloud tag creation",
		body:   `{"actor":{"nickname":"emma"},"repository":{"full_name":"acme/app"},"push":{"changes":[{"new":{"type":"tag","name":"v3","target":{"hash":"t1","message":"rel","author":{"raw":"Emma Smith <e@x>"}}},"old":null,"created":true,"closed":false,"commits":[]}]}}`,
		header: hdr("X-Event-Key", "repo:push"),
		want: Event{
			Provider: Bitbucket, Kind: KindTag, RawEvent: "repo:push", RepoName: "acme/app",
			RepoURLs: []string{"https://bitbucket.org/acme/app.git", "git@bitbucket.org:acme/app.git"},
			CloneURL: "https://bitbucket.org/acme/app.git", Ref: "refs/tags/v3", Tag: "v3", Before: zero, After: "t1", Created: true, Pusher: "emma",
			FilesOmitted: true,
		},
		head: "t1",
	},
	{
		name: "bitbucket server pull request",
		body: `{"eventKey":"pr:opened","actor":{"name":"gopher"},"pullRequest":{"id":2,"title":"WIP",
			"fromRef":{"id":"refs/heads/feature/wip","displayId":"feature/wip","latestCommit":"aaa","repository":{"slug":"app","project":{"key":"ACME"}}},
			"toRef":{"id":"refs/heads/main","displayId":"main","latestCommit":"bbb","repository":{"slug":"app","project":{"key":"ACME"},
				"links":{"clone":[{"href":"ssh://git@bbs.local:7999/acme/app.git","name":"ssh"},{"href":"https://bbs.local/scm/acme/app.git","name":"http"}]}}},
			"links":{"self":[{"href":"https://bbs.local/projects/ACME/repos/app/pull-requests/2"}]}}}`,
		header: hdr("X-Event-Key", "pr:opened", "X-Request-Id", "d-bbspr"),
		want: Event{
			Provider: BitbucketServer, Kind: KindPullRequest, RawEvent: "pr:opened", DeliveryID: "d-bbspr", RepoName: "ACME/app",
			RepoURLs: []string{"ssh://git@bbs.local:7999/acme/app.git", "https://bbs.local/scm/acme/app.git"},
			CloneURL: "https://bbs.local/scm/acme/app.git", Ref: "refs/pull-requests/2/from", Branch: "feature/wip", After: "aaa", Pusher: "gopher",
			PullRequest: &PullRequest{Number: 2, Action: "opened", Title: "WIP", SourceBranch: "feature/wip", TargetBranch: "main", HeadSHA: "aaa", URL: "https://bbs.local/projects/ACME/repos/app/pull-requests/2"},
		},
	},
	{
		name: "bitbucket server ping", body: `{"test": true}`,
		header: hdr("X-Event-Key", "diagnostics:ping", "X-Request-Id", "d-ping"),
		want:   Event{Provider: BitbucketServer, Kind: KindPing, RawEvent: "diagnostics:ping", DeliveryID: "d-ping"},
	},
	{
		name: "github ping without a body", body: "",
		header: hdr("X-GitHub-Event", "ping"),
		want:   Event{Provider: GitHub, Kind: KindPing, RawEvent: "ping"},
	},
	{
		name:   "github push of a ref that is neither branch nor tag",
		body:   `{"ref":"refs/notes/commits","before":"a","after":"b","commits":[],"repository":{"clone_url":"https://github.com/acme/app.git"}}`,
		header: hdr("X-GitHub-Event", "push"),
		want: Event{
			Provider: GitHub, Kind: KindPush, RawEvent: "push", RepoName: "acme/app",
			RepoURLs: []string{"https://github.com/acme/app.git"}, CloneURL: "https://github.com/acme/app.git",
			Ref: "refs/notes/commits", Before: "a", After: "b",
		},
	},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.body)
			if tc.file != "" {
				body = fixture(t, tc.file)
			}
			p, ok := Detect(tc.header)
			if !ok || p != tc.want.Provider {
				t.Fatalf("Detect = %q, %v; want %q", p, ok, tc.want.Provider)
			}
			e, err := Parse(p, tc.header, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := *e
			got.Commits, got.HeadCommit = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("event\n got %+v\nwant %+v", got, tc.want)
				if got.PullRequest != nil && tc.want.PullRequest != nil {
					t.Errorf("pull request\n got %+v\nwant %+v", *got.PullRequest, *tc.want.PullRequest)
				}
			}
			if len(e.Commits) != tc.commits {
				t.Fatalf("%d commits, want %d", len(e.Commits), tc.commits)
			}
			if tc.commits > 0 {
				c := e.Commits[0]
				if c.Message != tc.firstMsg || c.Author != tc.firstAuthor || c.ID == "" {
					t.Errorf("first commit = %+v; want message %q, author %q and an id", c, tc.firstMsg, tc.firstAuthor)
				}
				var at string
				if !c.Timestamp.IsZero() {
					at = c.Timestamp.Format(time.RFC3339)
				}
				if at != tc.firstTime {
					t.Errorf("first commit time = %q, want %q", at, tc.firstTime)
				}
			}
			if files := e.ChangedFiles(); !slices.Equal(files, tc.files) {
				t.Errorf("ChangedFiles = %q, want %q", files, tc.files)
			}
			var head string
			if e.HeadCommit != nil {
				head = e.HeadCommit.ID
			}
			if head != tc.head {
				t.Errorf("HeadCommit = %q, want %q", head, tc.head)
			}
		})
	}
}

// TestParseFixtures fails when a fixture has no case in parseCases.
func TestParseFixtures(t *testing.T) {
	t.Parallel()
	covered := map[string]bool{}
	for _, tc := range parseCases {
		covered[tc.file] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join("testdata", "fixtures"), f)
		if !covered[filepath.ToSlash(rel)] {
			t.Errorf("fixture %s has no case in parseCases", rel)
		}
	}
}

func TestParseHeadCommitDetails(t *testing.T) {
	t.Parallel()
	h := hdr("X-Event-Key", "repo:push")
	e, err := Parse(Bitbucket, h, fixture(t, "bitbucket/repo-push.json"))
	if err != nil {
		t.Fatal(err)
	}
	hc := e.HeadCommit
	if hc.Message != "new commit message\n" || hc.Author != "Emma" || hc.Timestamp.IsZero() ||
		hc.URL != "https://bitbucket.org/user_name/repo_name/commits/c4b2b7914156a878aa7c9da452a09fb50c2091f2" {
		t.Errorf("HeadCommit = %+v", hc)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		h    http.Header
		want Provider
		ok   bool
	}{
		{"nothing", hdr("Content-Type", "application/json"), "", false},
		{"github", hdr("X-GitHub-Event", "push"), GitHub, true},
		{"gitlab", hdr("X-Gitlab-Event", "Push Hook"), GitLab, true},
		{"codeup before gitlab", hdr("Codeup-Event", "Push Hook", "X-Gitlab-Event", "Push Hook"), Codeup, true},
		{"gitea with every compat header", giteaHeaders(false), Gitea, true},
		{"forgejo alone", hdr("X-Forgejo-Event", "push"), Gitea, true},
		{"gogs", hdr("X-Gogs-Event", "push"), Gogs, true},
		{"bitbucket cloud by key", hdr("X-Event-Key", "repo:push"), Bitbucket, true},
		{"bitbucket cloud pr by key", hdr("X-Event-Key", "pullrequest:updated"), Bitbucket, true},
		{"bitbucket server by key", hdr("X-Event-Key", "repo:refs_changed"), BitbucketServer, true},
		{"bitbucket server pr by key", hdr("X-Event-Key", "pr:from_ref_updated"), BitbucketServer, true},
		{"bitbucket server ping", hdr("X-Event-Key", "diagnostics:ping"), BitbucketServer, true},
		{"unknown key, cloud headers", hdr("X-Event-Key", "repo:new_thing", "X-Hook-UUID", "h"), Bitbucket, true},
		{"unknown key, server header", hdr("X-Event-Key", "repo:new_thing", "X-Request-Id", "r"), BitbucketServer, true},
		{"unknown key, no hint", hdr("X-Event-Key", "repo:new_thing"), Bitbucket, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, ok := Detect(tc.h); got != tc.want || ok != tc.ok {
				t.Errorf("Detect = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    Provider
		h    http.Header
		body string
		want string // in the message
	}{
		{"github truncated", GitHub, hdr("X-GitHub-Event", "push"), `{"ref":"refs/heads/main",`, "not valid JSON"},
		{"github not an object", GitHub, hdr("X-GitHub-Event", "push"), `[1,2]`, "not a JSON object"},
		{"github null", GitHub, hdr("X-GitHub-Event", "push"), `null`, "not a JSON object"},
		{"github empty", GitHub, hdr("X-GitHub-Event", "push"), ``, "empty"},
		{"github wrong type", GitHub, hdr("X-GitHub-Event", "push"), `{"ref":5}`, "field ref"},
		{"github no ref", GitHub, hdr("X-GitHub-Event", "push"), `{"before":"a"}`, "no ref"},
		{"github pr without pull_request", GitHub, hdr("X-GitHub-Event", "pull_request"), `{"action":"opened"}`, "no pull_request"},
		{"github ping garbage", GitHub, hdr("X-GitHub-Event", "ping"), `zen`, "not a JSON object"},
		{"github form without payload", GitHub, hdr("X-GitHub-Event", "push", "Content-Type", "application/x-www-form-urlencoded"), `a=b`, "no payload field"},
		{"gitlab commits not a list", GitLab, hdr("X-Gitlab-Event", "Push Hook"), `{"ref":"refs/heads/x","commits":{}}`, "field commits"},
		{"gitlab mr without attributes", GitLab, hdr("X-Gitlab-Event", "Merge Request Hook"), `{}`, "object_attributes"},
		{"codeup garbage", Codeup, hdr("Codeup-Event", "Push Hook"), `<html>`, "not a JSON object"},
		{"gitea bad", Gitea, hdr("X-Gitea-Event", "push"), `{"ref":"refs/heads/x","commits":[{"added":"x"}]}`, "commits.added"},
		{"gogs bad", Gogs, hdr("X-Gogs-Event", "push"), `{"ref":`, "not valid JSON"},
		{"bitbucket no changes", Bitbucket, hdr("X-Event-Key", "repo:push"), `{"push":{"changes":[]}}`, "no changes"},
		{"bitbucket change without refs", Bitbucket, hdr("X-Event-Key", "repo:push"), `{"push":{"changes":[{}]}}`, "neither a new nor an old ref"},
		{"bitbucket pr without pullrequest", Bitbucket, hdr("X-Event-Key", "pullrequest:created"), `{}`, "no pullrequest"},
		{"bitbucket server no changes", BitbucketServer, hdr("X-Event-Key", "repo:refs_changed"), `{"changes":[]}`, "no changes"},
		{"bitbucket server pr without refs", BitbucketServer, hdr("X-Event-Key", "pr:opened"), `{"pullRequest":{}}`, "fromRef"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.p, tc.h, []byte(tc.body))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", e)
			}
			if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrInvalidPayload mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseRefusesUnknownProviderAndMissingHeader(t *testing.T) {
	t.Parallel()
	if _, err := Parse("svn", hdr(), []byte(`{}`)); err == nil {
		t.Error("unknown provider accepted")
	}
	_, err := Parse(GitHub, hdr("X-Gitlab-Event", "Push Hook"), []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "event header") {
		t.Errorf("missing event header: err = %v", err)
	}
}

func TestChangedFiles(t *testing.T) {
	t.Parallel()
	e := &Event{Commits: []Commit{
		{Added: []string{"b", "a"}, Modified: []string{"c"}},
		{Modified: []string{"a", ""}, Removed: []string{"d", "b"}},
	}}
	if got, want := e.ChangedFiles(), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("ChangedFiles = %q, want %q", got, want)
	}
	if got := (&Event{}).ChangedFiles(); len(got) != 0 {
		t.Errorf("no commits: ChangedFiles = %q", got)
	}
}
