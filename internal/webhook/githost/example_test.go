package githost_test

import (
	"fmt"
	"net/http"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// A push to GitLab, checked against a pipeline that builds main and release branches when
// something under src/ changes.
func Example() {
	h := http.Header{}
	h.Set("X-Gitlab-Event", "Push Hook")
	h.Set("X-Gitlab-Event-UUID", "6f1a")
	h.Set("X-Gitlab-Token", "s3cret")
	body := []byte(`{"object_kind":"push","ref":"refs/heads/release/1.2","before":"a1","after":"b2",
		"user_username":"ann","project":{"path_with_namespace":"acme/app",
		"git_http_url":"https://git.example.com/acme/app.git","git_ssh_url":"git@git.example.com:acme/app.git"},
		"commits":[{"id":"b2","message":"Fix","author":{"name":"Ann"},"added":[],"modified":["src/main.go"],"removed":[]}],
		"total_commits_count":1}`)

	p, ok := githost.Detect(h)
	if !ok {
		return
	}
	if err := githost.Verify(p, h, body, []byte("s3cret")); err != nil {
		fmt.Println(err)
		return
	}
	e, err := githost.Parse(p, h, body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Provider, e.Kind, e.Branch, e.After, e.ChangedFiles())

	src := &pipeline.Source{
		URL:      "git@git.example.com:acme/app",
		Branches: []string{"main", "release/*"},
		Paths:    []string{"src/**"},
	}
	ok, reason := githost.Match(src, e)
	fmt.Printf("run: %v %q\n", ok, reason)
	src.Paths = []string{"docs/**"}
	ok, reason = githost.Match(src, e)
	fmt.Printf("run: %v %q\n", ok, reason)
	// Output:
	// gitlab push release/1.2 b2 [src/main.go]
	// run: true ""
	// run: false "no changed file matches source.paths [docs/**]"
}
