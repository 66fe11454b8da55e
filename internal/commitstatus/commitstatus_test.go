package commitstatus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowd/flowd/internal/commitstatus"
	"github.com/flowd/flowd/internal/commitstatus/hosttest"
)

// fixture is testdata/<kind>.json: a host's documented request for each flowd state and its
// documented error bodies.
type fixture struct {
	Docs   string `json:"docs"`
	Target struct {
		Host string `json:"host"`
		API  string `json:"api"`
		Repo string `json:"repo"`
	} `json:"target"`
	Token  string `json:"token"`
	Status struct {
		SHA         string `json:"sha"`
		Ref         string `json:"ref"`
		Context     string `json:"context"`
		Description string `json:"description"`
		TargetURL   string `json:"target_url"`
	} `json:"status"`
	Requests []struct {
		State   string            `json:"state"`
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    map[string]any    `json:"body"`
	} `json:"requests"`
	Errors []struct {
		Code     int             `json:"code"`
		Body     json.RawMessage `json:"body"`
		Raw      *string         `json:"raw"`
		Accepted bool            `json:"accepted"`
		Message  string          `json:"message"`
		Retry    bool            `json:"retry"`
	} `json:"errors"`
}

func load(t *testing.T, kind string) fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/" + kind + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s.json: %v", kind, err)
	}
	if f.Target.Host != kind || !strings.HasPrefix(f.Docs, "https://") || len(f.Requests) != 5 || len(f.Errors) == 0 {
		t.Fatalf("%s.json is incomplete: host %q, docs %q, %d requests, %d errors", kind, f.Target.Host, f.Docs, len(f.Requests), len(f.Errors))
	}
	return f
}

func (f fixture) target() commitstatus.Target {
	return commitstatus.Target{Host: f.Target.Host, API: f.Target.API, Repo: f.Target.Repo}
}

func (f fixture) status(state string) commitstatus.Status {
	return commitstatus.Status{SHA: f.Status.SHA, Ref: f.Status.Ref, State: state, Context: f.Status.Context,
		Description: f.Status.Description, TargetURL: f.Status.TargetURL}
}

func body(t *testing.T, r *http.Request) map[string]any {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return m
}

func TestHostsHaveFixtures(t *testing.T) {
	want := []string{"github", "gitlab", "gitea", "bitbucket", "bitbucket_server", "codeup"}
	if !reflect.DeepEqual(commitstatus.Hosts, want) {
		t.Fatalf("Hosts = %v, want %v", commitstatus.Hosts, want)
	}
	for _, kind := range commitstatus.Hosts {
		load(t, kind)
	}
}

// TestNewRequestMatchesDocs checks every host's request for every flowd state against the
// request its documentation describes.
func TestNewRequestMatchesDocs(t *testing.T) {
	for _, kind := range commitstatus.Hosts {
		f := load(t, kind)
		for _, want := range f.Requests {
			t.Run(kind+"/"+want.State, func(t *testing.T) {
				req, err := commitstatus.NewRequest(context.Background(), f.target(), f.Token, f.status(want.State))
				if err != nil {
					t.Fatal(err)
				}
				if req.Method != want.Method {
					t.Errorf("method %s, want %s", req.Method, want.Method)
				}
				if got := req.URL.String(); got != f.Target.API+want.Path {
					t.Errorf("URL\n got %s\nwant %s", got, f.Target.API+want.Path)
				}
				for name, v := range want.Headers {
					if got := req.Header.Get(name); got != v {
						t.Errorf("header %s = %q, want %q", name, got, v)
					}
				}
				if got := body(t, req); !reflect.DeepEqual(got, want.Body) {
					t.Errorf("body\n got %v\nwant %v", got, want.Body)
				}
			})
		}
	}
}

// send reports s to t through a real HTTP client and checks the answer.
func send(t *testing.T, tg commitstatus.Target, token string, s commitstatus.Status) error {
	t.Helper()
	req, err := commitstatus.NewRequest(context.Background(), tg, token, s)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return commitstatus.Check(tg, resp.StatusCode, b)
}

// TestHostsAcceptReports sends every host's report for every state to hosttest, which checks
// them as the host would.
func TestHostsAcceptReports(t *testing.T) {
	srv := hosttest.New(t)
	for _, kind := range commitstatus.Hosts {
		f := load(t, kind)
		srv.SetToken(kind, f.Token)
		tg := commitstatus.Target{Host: kind, API: srv.API(kind), Repo: f.Target.Repo}
		for _, want := range f.Requests {
			if err := send(t, tg, f.Token, f.status(want.State)); err != nil {
				t.Errorf("%s %s: %v", kind, want.State, err)
				continue
			}
			got := srv.Requests()
			last := got[len(got)-1]
			if last.Host != kind || last.Path != want.Path || !reflect.DeepEqual(last.Body, want.Body) {
				t.Errorf("%s %s: server got %s %s %v, want %s %v", kind, want.State, last.Host, last.Path, last.Body, want.Path, want.Body)
			}
		}
	}
}

// TestGitLabSameState: GitLab refuses to move a running status to running with a 400, which
// Check takes as accepted; a wrong token is not.
func TestGitLabSameState(t *testing.T) {
	srv := hosttest.New(t)
	f := load(t, "gitlab")
	tg := commitstatus.Target{Host: "gitlab", API: srv.API("gitlab"), Repo: f.Target.Repo}
	for range 2 {
		if err := send(t, tg, f.Token, f.status("running")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Code != 201 || reqs[1].Code != 400 {
		t.Fatalf("answers %+v, want 201 then 400", reqs)
	}
	srv.SetToken("gitlab", "right")
	var e *commitstatus.Error
	if err := send(t, tg, "wrong", f.status("success")); !errors.As(err, &e) || e.Code != 401 || e.Retry {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestCheckDocumentedErrors(t *testing.T) {
	for _, kind := range commitstatus.Hosts {
		f := load(t, kind)
		for _, c := range f.Errors {
			b := []byte(c.Body)
			if c.Raw != nil {
				b = []byte(*c.Raw)
			}
			err := commitstatus.Check(f.target(), c.Code, b)
			if c.Accepted {
				if err != nil {
					t.Errorf("%s %d %s: %v, want accepted", kind, c.Code, b, err)
				}
				continue
			}
			var e *commitstatus.Error
			if !errors.As(err, &e) {
				t.Errorf("%s %d %s: %v, want *Error", kind, c.Code, b, err)
				continue
			}
			if e.Code != c.Code || e.Message != c.Message || e.Retry != c.Retry {
				t.Errorf("%s %d: got code %d message %q retry %v, want %q retry %v", kind, c.Code, e.Code, e.Message, e.Retry, c.Message, c.Retry)
			}
			if want := fmt.Sprintf("%s answered %d: %s", kind, c.Code, c.Message); e.Error() != want {
				t.Errorf("Error() = %q, want %q", e.Error(), want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	gh := commitstatus.Target{Host: "github"}
	for _, code := range []int{200, 201, 204} {
		if err := commitstatus.Check(gh, code, nil); err != nil {
			t.Errorf("%d: %v", code, err)
		}
	}
	err := commitstatus.Check(gh, 401, []byte(`{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`))
	if err == nil || err.Error() != "github answered 401: Bad credentials" {
		t.Errorf("Error() = %v", err)
	}
	// Only GitLab's 400 about a transition is an acceptance.
	if commitstatus.Check(gh, 400, []byte(`{"message":"Cannot transition status via :run from :running"}`)) == nil {
		t.Error("GitHub's 400 taken as accepted")
	}
	for code, retry := range map[int]bool{400: false, 401: false, 403: false, 404: false, 408: true, 409: true, 422: false, 429: true, 500: true, 503: true} {
		var e *commitstatus.Error
		if err := commitstatus.Check(gh, code, []byte("not json")); !errors.As(err, &e) || e.Retry != retry || e.Message != http.StatusText(code) {
			t.Errorf("%d: %+v, want retry %v and the status text", code, e, retry)
		}
	}
	long := `{"message":"` + strings.Repeat("x", 5000) + `"}`
	var e *commitstatus.Error
	if err := commitstatus.Check(gh, 500, []byte(long)); !errors.As(err, &e) || utf8.RuneCountInString(e.Message) > 500 {
		t.Errorf("long message kept whole: %d characters", len(e.Message))
	}
}

func TestNewRequestRefuses(t *testing.T) {
	f := load(t, "github")
	ok := f.status("success")
	const secret = "ghp_secret_value"
	for name, c := range map[string]struct {
		t     commitstatus.Target
		token string
		s     commitstatus.Status
	}{
		"unknown state":   {f.target(), secret, func() commitstatus.Status { s := ok; s.State = "skipped"; return s }()},
		"short sha":       {f.target(), secret, func() commitstatus.Status { s := ok; s.SHA = "e10dae2"; return s }()},
		"no context":      {f.target(), secret, func() commitstatus.Status { s := ok; s.Context = ""; return s }()},
		"no token":        {f.target(), "", ok},
		"newline token":   {f.target(), secret + "\n", ok},
		"unknown host":    {commitstatus.Target{Host: "gogs", API: "https://x", Repo: "a/b"}, secret, ok},
		"three segments":  {commitstatus.Target{Host: "github", API: "https://api.github.com", Repo: "a/b/c"}, secret, ok},
		"one segment":     {commitstatus.Target{Host: "gitlab", API: "https://gitlab.com/api/v4", Repo: "a"}, secret, ok},
		"api not http(s)": {commitstatus.Target{Host: "github", API: "ftp://x", Repo: "a/b"}, secret, ok},
	} {
		_, err := commitstatus.NewRequest(context.Background(), c.t, c.token, c.s)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}

// TestShortening: over-long fields are cut to each host's limit, on character boundaries,
// and the hosts take them.
func TestShortening(t *testing.T) {
	srv := hosttest.New(t)
	desc := strings.Repeat("é", 100) + strings.Repeat("ü", 100) // 200 characters, 400 bytes
	name := strings.Repeat("deploy-production-", 4)             // 72 characters
	for _, kind := range commitstatus.Hosts {
		f := load(t, kind)
		s := f.status("failed")
		s.Description, s.Context = desc, name
		tg := commitstatus.Target{Host: kind, API: srv.API(kind), Repo: f.Target.Repo}
		if err := send(t, tg, f.Token, s); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
	limits := map[string]map[string]int{
		"github": {"description": 140}, "bitbucket": {"key": 40}, "codeup": {"context": 50},
	}
	keys := map[string]bool{}
	for _, r := range srv.Requests() {
		for field, n := range limits[r.Host] {
			v, _ := r.Body[field].(string)
			if utf8.RuneCountInString(v) != n || !utf8.ValidString(v) {
				t.Errorf("%s %s = %q: %d characters, want %d", r.Host, field, v, utf8.RuneCountInString(v), n)
			}
		}
		if r.Host == "bitbucket" {
			keys[r.Body["key"].(string)] = true
		}
	}
	// The key is stable for one name and differs for another with the same beginning.
	f := load(t, "bitbucket")
	tg := commitstatus.Target{Host: "bitbucket", API: srv.API("bitbucket"), Repo: f.Target.Repo}
	for _, n := range []string{name, name + "x"} {
		s := f.status("success")
		s.Context = n
		if err := send(t, tg, f.Token, s); err != nil {
			t.Fatal(err)
		}
		r := srv.Requests()
		keys[r[len(r)-1].Body["key"].(string)] = true
	}
	if len(keys) != 2 {
		t.Errorf("keys %v, want one for each of the two names", keys)
	}
}
