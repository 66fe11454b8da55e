package pipeline

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/commitstatus"
)

func TestParseCommitStatus(t *testing.T) {
	t.Parallel()
	head := "name: x\nvariables:\n  GH: {secret: true}\n  PLAIN: \"1\"\nsource:\n"
	stages := "stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	for _, c := range []struct {
		source string
		want   *commitstatus.Target
	}{
		{"  url: https://github.com/acme/app.git\n", nil},
		{"  url: https://github.com/acme/app.git\n  status_token: GH\n",
			&commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "acme/app"}},
		{"  url: git@gitlab.com:acme/tools/app.git\n  status_token: GH\n",
			&commitstatus.Target{Host: "gitlab", API: "https://gitlab.com/api/v4", Repo: "acme/tools/app"}},
		{"  url: /srv/mirror/app.git\n  status_token: GH\n  status_host: gitea\n  status_api: https://git.example.com/api/v1\n  status_repo: acme/app\n",
			&commitstatus.Target{Host: "gitea", API: "https://git.example.com/api/v1", Repo: "acme/app"}},
	} {
		p, err := Parse([]byte(head + c.source + stages))
		if err != nil {
			t.Errorf("%s: %v", c.source, err)
			continue
		}
		switch {
		case c.want == nil && (p.Source.Status != nil || p.Source.StatusToken != ""):
			t.Errorf("%s: status = %+v, want none", c.source, p.Source.Status)
		case c.want != nil && (p.Source.Status == nil || *p.Source.Status != *c.want || p.Source.StatusToken != "GH"):
			t.Errorf("%s: status = %+v (token %q), want %+v", c.source, p.Source.Status, p.Source.StatusToken, c.want)
		}
	}
}

func TestParseCommitStatusProblems(t *testing.T) {
	t.Parallel()
	head := "name: x\nvariables:\n  GH: {secret: true}\n  PLAIN: \"1\"\nsource:\n"
	stages := "stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	for _, c := range []struct{ source, want string }{
		{"  url: https://github.com/a/b.git\n  status_token: NOPE\n", `7:17: source.status_token: "NOPE" is not a declared variable`},
		{"  url: https://github.com/a/b.git\n  status_token: PLAIN\n", `7:17: source.status_token: variable "PLAIN" must be secret`},
		{"  url: https://git.example.com/a/b.git\n  status_token: GH\n", `7:17: source.status_token: cannot tell the code host of "https://git.example.com/a/b.git": set source.status_host to`},
		{"  url: https://git.example.com/a/b.git\n  status_token: GH\n  status_host: gogs\n", `8:16: source.status_host: Gogs has no commit status API`},
		{"  url: https://git.example.com/a/b.git\n  status_token: GH\n  status_host: svn\n", `8:16: source.status_host: "svn" is not a code host flowd reports to`},
		{"  url: https://git.example.com/a/b.git\n  status_token: GH\n  status_host: gitlab\n  status_api: ftp://x\n", `9:15: source.status_api: "ftp://x" is not an http(s) URL`},
		{"  url: https://github.com/a/b.git\n  status_host: github\n", `7:16: source.status_host: has no effect without status_token`},
	} {
		_, err := Parse([]byte(head + c.source + stages))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.source, err, c.want)
		}
	}
}
