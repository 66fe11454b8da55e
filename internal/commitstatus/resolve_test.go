package commitstatus_test

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/commitstatus"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		url, host, api, repo string
		want                 commitstatus.Target
	}{
		{url: "https://github.com/octo-org/hello-world.git",
			want: commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "octo-org/hello-world"}},
		{url: "git@github.com:octo-org/hello-world.git",
			want: commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "octo-org/hello-world"}},
		{url: "ssh://git@github.com/octo-org/hello-world",
			want: commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "octo-org/hello-world"}},
		{url: "https://x-access-token:secret@github.com/octo-org/hello-world/",
			want: commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "octo-org/hello-world"}},
		// GitHub Enterprise Server: the API under /api/v3, or where status_api says.
		{url: "https://ghe.example.com/team/app.git", host: "github",
			want: commitstatus.Target{Host: "github", API: "https://ghe.example.com/api/v3", Repo: "team/app"}},
		{url: "git@ghe.example.com:team/app.git", host: "github", api: "https://ghe-api.example.com/api/v3/",
			want: commitstatus.Target{Host: "github", API: "https://ghe-api.example.com/api/v3", Repo: "team/app"}},
		// GitLab subgroups.
		{url: "https://gitlab.com/group/sub/project.git",
			want: commitstatus.Target{Host: "gitlab", API: "https://gitlab.com/api/v4", Repo: "group/sub/project"}},
		{url: "ssh://git@gitlab.example.com:2222/group/sub/project.git", host: "gitlab",
			want: commitstatus.Target{Host: "gitlab", API: "https://gitlab.example.com/api/v4", Repo: "group/sub/project"}},
		{url: "http://gitlab.local:8080/a/b", host: "GitLab",
			want: commitstatus.Target{Host: "gitlab", API: "http://gitlab.local:8080/api/v4", Repo: "a/b"}},
		// Gitea, Forgejo.
		{url: "https://codeberg.org/forgejo/forgejo.git",
			want: commitstatus.Target{Host: "gitea", API: "https://codeberg.org/api/v1", Repo: "forgejo/forgejo"}},
		{url: "https://gitea.com/gitea/tea",
			want: commitstatus.Target{Host: "gitea", API: "https://gitea.com/api/v1", Repo: "gitea/tea"}},
		{url: "git@git.example.com:me/app.git", host: "forgejo",
			want: commitstatus.Target{Host: "gitea", API: "https://git.example.com/api/v1", Repo: "me/app"}},
		// Bitbucket Cloud.
		{url: "git@bitbucket.org:my-workspace/my-repo.git",
			want: commitstatus.Target{Host: "bitbucket", API: "https://api.bitbucket.org/2.0", Repo: "my-workspace/my-repo"}},
		{url: "https://jdoe@bitbucket.org/my-workspace/my-repo.git",
			want: commitstatus.Target{Host: "bitbucket", API: "https://api.bitbucket.org/2.0", Repo: "my-workspace/my-repo"}},
		// Bitbucket Server: by its /scm/ path, under a context path, or over SSH with status_host.
		{url: "https://bitbucket.example.com/scm/PROJ/repo.git",
			want: commitstatus.Target{Host: "bitbucket_server", API: "https://bitbucket.example.com", Repo: "PROJ/repo"}},
		{url: "https://git.example.com/bitbucket/scm/PROJ/repo.git",
			want: commitstatus.Target{Host: "bitbucket_server", API: "https://git.example.com/bitbucket", Repo: "PROJ/repo"}},
		{url: "ssh://git@bitbucket.example.com:7999/proj/repo.git", host: "bitbucket_server",
			want: commitstatus.Target{Host: "bitbucket_server", API: "https://bitbucket.example.com", Repo: "proj/repo"}},
		// Codeup.
		{url: "https://codeup.aliyun.com/60de7a6852743a5162b5f957/group/DemoRepo.git",
			want: commitstatus.Target{Host: "codeup", API: "https://openapi-rdc.aliyuncs.com", Repo: "60de7a6852743a5162b5f957/group/DemoRepo"}},
		{url: "git@codeup.aliyun.com:60de7a6852743a5162b5f957/DemoRepo.git",
			want: commitstatus.Target{Host: "codeup", API: "https://openapi-rdc.aliyuncs.com", Repo: "60de7a6852743a5162b5f957/DemoRepo"}},
		// status_repo wins over the URL's path; all three keys need no URL.
		{url: "https://github.com/fork/app.git", repo: "/upstream/app/",
			want: commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "upstream/app"}},
		{host: "gitlab", api: "https://gitlab.example.com/api/v4", repo: "a/b/c",
			want: commitstatus.Target{Host: "gitlab", API: "https://gitlab.example.com/api/v4", Repo: "a/b/c"}},
	} {
		got, err := commitstatus.Resolve(c.url, c.host, c.api, c.repo)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q, %q, %q, %q) = %+v, %v; want %+v", c.url, c.host, c.api, c.repo, got, err, c.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	for _, c := range []struct {
		url, host, api, repo string
		want                 []string // in the message
	}{
		{url: "https://git.example.com/a/b.git",
			want: []string{`cannot tell the code host of "https://git.example.com/a/b.git": set source.status_host to github, gitlab, gitea, bitbucket, bitbucket_server or codeup`}},
		{url: "https://me:hunter2@git.example.com/a/b.git",
			want: []string{"source.status_host", "git.example.com"}},
		{url: "https://gogs.example.com/a/b.git", host: "gogs",
			want: []string{"Gogs has no commit status API", "source.status_host"}},
		{url: "https://gogs.example.com/a/b.git",
			want: []string{"Gogs", "no commit status API", "source.status_host"}},
		{url: "https://git.example.com/a/b.git", host: "sourcehut",
			want: []string{`source.status_host "sourcehut"`, "github, gitlab"}},
		{url: "https://github.com/a/b.git", api: "git.example.com/api",
			want: []string{"source.status_api", "http(s) URL"}},
		{url: "https://github.com/a/b.git", api: "ftp://git.example.com/api",
			want: []string{"source.status_api"}},
		{url: "https://github.com/a/b.git", repo: "b",
			want: []string{"source.status_repo", "at least two path segments"}},
		{url: "https://github.com/a/b.git", repo: "a/b/c",
			want: []string{"source.status_repo", "owner/name"}},
		{url: "https://github.com/just-owner",
			want: []string{"source.status_repo"}},
		{url: "", host: "gitlab",
			want: []string{"no source URL", "source.status_api"}},
		{url: "not a url",
			want: []string{"source.status_host"}},
	} {
		_, err := commitstatus.Resolve(c.url, c.host, c.api, c.repo)
		if err == nil {
			t.Errorf("Resolve(%q, %q, %q, %q): no error", c.url, c.host, c.api, c.repo)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q, %q, %q, %q) = %q, want it to say %q", c.url, c.host, c.api, c.repo, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
