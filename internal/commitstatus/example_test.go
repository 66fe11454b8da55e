package commitstatus_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/flowd/flowd/internal/commitstatus"
)

func ExampleResolve() {
	t, err := commitstatus.Resolve("git@gitlab.example.com:group/sub/app.git", "gitlab", "", "")
	fmt.Println(t.Host, t.API, t.Repo, err)

	_, err = commitstatus.Resolve("https://git.example.com/team/app.git", "", "", "")
	fmt.Println(err)
	// Output:
	// gitlab https://gitlab.example.com/api/v4 group/sub/app <nil>
	// cannot tell the code host of "https://git.example.com/team/app.git": set source.status_host to github, gitlab, gitea, bitbucket, bitbucket_server or codeup
}

func ExampleNewRequest() {
	t := commitstatus.Target{Host: commitstatus.GitHub, API: "https://api.github.com", Repo: "octo-org/app"}
	req, _ := commitstatus.NewRequest(context.Background(), t, "TOKEN", commitstatus.Status{
		SHA:         "e10dae226959c2194f2b07b077c07762d93821cf",
		State:       "running",
		Context:     "build",
		Description: "flowd run 7 is running",
		TargetURL:   "https://ci.example.com/pipelines/build/runs/7",
	})
	body, _ := io.ReadAll(req.Body)
	fmt.Println(req.Method, req.URL)
	fmt.Println(string(body))

	// The host's answer; a refusal is an *Error that says whether to try again.
	err := commitstatus.Check(t, http.StatusUnauthorized, []byte(`{"message":"Bad credentials"}`))
	fmt.Println(err, err.(*commitstatus.Error).Retry)
	// Output:
	// POST https://api.github.com/repos/octo-org/app/statuses/e10dae226959c2194f2b07b077c07762d93821cf
	// {"state":"pending","target_url":"https://ci.example.com/pipelines/build/runs/7","description":"flowd run 7 is running","context":"build"}
	// github answered 401: Bad credentials false
}
