package hosttest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/commitstatus/hosttest"
)

const sha = "e10dae226959c2194f2b07b077c07762d93821cf"

// post sends body to path below host's API base with header and returns the answer.
func post(t *testing.T, srv *hosttest.Server, host, path, header, value, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.API(host)+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

const ghPath = "/repos/o/r/statuses/" + sha

func TestFailNext(t *testing.T) {
	srv := hosttest.New(t)
	srv.FailNext("github", 2, 503)
	body := `{"state":"pending","context":"build"}`
	var codes []int
	for range 3 {
		code, m := post(t, srv, "github", ghPath, "Authorization", "Bearer x", body)
		codes = append(codes, code)
		if code == 503 && m["message"] != "Service Unavailable" {
			t.Errorf("503 body %v, want GitHub's message shape", m)
		}
	}
	if codes[0] != 503 || codes[1] != 503 || codes[2] != 201 {
		t.Fatalf("codes %v, want 503 503 201", codes)
	}
	// Other hosts are not touched.
	srv.FailNext("bitbucket", 1, 500)
	if code, _ := post(t, srv, "gitea", ghPath, "Authorization", "token x", body); code != 201 {
		t.Errorf("gitea answered %d while bitbucket fails", code)
	}
	code, m := post(t, srv, "bitbucket", "/repositories/w/r/commit/"+sha+"/statuses/build", "Authorization", "Bearer x",
		`{"key":"build","state":"INPROGRESS","url":"https://ci"}`)
	if e, _ := m["error"].(map[string]any); code != 500 || m["type"] != "error" || e["message"] == "" {
		t.Errorf("bitbucket FailNext: %d %v", code, m)
	}
	reqs := srv.Requests()
	if len(reqs) != 5 || reqs[0].Code != 503 || reqs[2].Code != 201 || reqs[4].Host != "bitbucket" {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestSetToken(t *testing.T) {
	srv := hosttest.New(t)
	for _, c := range []struct {
		host, path, token, header, right, wrong, body string
		check                                         func(m map[string]any) bool
	}{
		{"github", ghPath, "tok", "Authorization", "Bearer tok", "Bearer nope", `{"state":"success"}`,
			func(m map[string]any) bool { return m["message"] == "Bad credentials" }},
		{"gitlab", "/projects/g%2Fp/statuses/" + sha, "tok", "PRIVATE-TOKEN", "tok", "nope", `{"state":"success"}`,
			func(m map[string]any) bool { return m["message"] == "401 Unauthorized" }},
		{"gitea", ghPath, "tok", "Authorization", "token tok", "token nope", `{"state":"success"}`,
			func(m map[string]any) bool { return m["message"] != "" && m["url"] != nil }},
		{"bitbucket", "/repositories/w/r/commit/" + sha + "/statuses/build", "jdoe:pw", "Authorization", "Basic amRvZTpwdw==", "Bearer jdoe:pw",
			`{"key":"k","state":"SUCCESSFUL","url":"https://ci"}`,
			func(m map[string]any) bool { return m["type"] == "error" }},
		{"bitbucket_server", "/rest/api/latest/projects/P/repos/r/commits/" + sha + "/builds", "tok", "Authorization", "Bearer tok", "Bearer nope",
			`{"key":"k","state":"CANCELLED","url":"https://ci"}`,
			func(m map[string]any) bool { errs, _ := m["errors"].([]any); return len(errs) == 1 }},
		{"codeup", "/oapi/v1/codeup/organizations/o/repositories/o%2Fr/commits/" + sha + "/statuses", "pt-tok", "x-yunxiao-token", "pt-tok", "pt-nope",
			`{"state":"success"}`,
			func(m map[string]any) bool {
				return m["errorCode"] == "InvalidTokenError" && m["errorMessage"] == "Token is invalid"
			}},
	} {
		srv.SetToken(c.host, c.token)
		if code, m := post(t, srv, c.host, c.path, c.header, c.wrong, c.body); code != 401 || !c.check(m) {
			t.Errorf("%s with a wrong token: %d %v, want the host's 401", c.host, code, m)
		}
		if code, _ := post(t, srv, c.host, c.path, "", "", c.body); code != 401 {
			t.Errorf("%s without auth: %d, want 401", c.host, code)
		}
		if code, m := post(t, srv, c.host, c.path, c.header, c.right, c.body); code/100 != 2 {
			t.Errorf("%s with the token: %d %v", c.host, code, m)
		}
	}
}

func TestValidates(t *testing.T) {
	srv := hosttest.New(t)
	for _, c := range []struct {
		host, path, body string
		code             int
	}{
		{"github", "/repos/o/r/statuses/" + sha, `{"state":"running"}`, 422}, // GitHub has no running
		{"github", "/repos/o/r/statuses/" + sha, `{"state":"success","description":"` + strings.Repeat("x", 141) + `"}`, 422},
		{"github", "/repos/o/r/status/" + sha, `{"state":"success"}`, 404},
		{"github", "/repos/o/r/statuses/abc", `{"state":"success"}`, 404},
		{"gitlab", "/projects/g/p/statuses/" + sha, `{"state":"success"}`, 404}, // the path must be encoded
		{"gitlab", "/projects/g%2Fp/statuses/" + sha, `{"state":"error"}`, 400},
		{"gitea", "/repos/o/r/statuses/" + sha, `{"state":"canceled"}`, 422},
		{"bitbucket", "/repositories/w/r/commit/" + sha + "/statuses/build", `{"key":"k","state":"SUCCESSFUL"}`, 400}, // no url
		{"bitbucket", "/repositories/w/r/commit/" + sha + "/statuses/build", `{"key":"` + strings.Repeat("k", 41) + `","state":"SUCCESSFUL","url":"u"}`, 400},
		{"bitbucket", "/repositories/w/r/commit/" + sha + "/statuses/build", `{"key":"k","state":"CANCELLED","url":"u"}`, 400},
		{"bitbucket_server", "/rest/api/latest/projects/P/repos/r/commits/" + sha + "/builds", `{"key":"k","state":"STOPPED","url":"u"}`, 400},
		{"bitbucket_server", "/rest/build-status/1.0/commits/" + sha, `{"key":"k","state":"SUCCESSFUL","url":"u"}`, 404},
		{"codeup", "/oapi/v1/codeup/organizations/o/repositories/o%2Fr/commits/" + sha + "/statuses", `{"state":"success","context":"` + strings.Repeat("c", 51) + `"}`, 400},
		{"codeup", "/oapi/v1/codeup/organizations/o/repositories/o%2Fr/commits/" + sha + "/statuses", `not json`, 400},
		// accepted, with each host's documented code
		{"github", "/repos/o/r/statuses/" + sha, `{"state":"pending"}`, 201},
		{"gitlab", "/projects/g%2Fp/statuses/" + sha, `{"state":"canceled"}`, 201},
		{"gitea", "/repos/o/r/statuses/" + sha, `{"state":"warning"}`, 201},
		{"bitbucket", "/repositories/w/r/commit/" + sha + "/statuses/build/", `{"key":"k","state":"STOPPED","url":"u"}`, 201},
		{"bitbucket_server", "/rest/api/latest/projects/P/repos/r/commits/" + sha + "/builds", `{"key":"k","state":"CANCELLED","url":"u"}`, 204},
		{"codeup", "/oapi/v1/codeup/organizations/o/repositories/o%2Fr/commits/" + sha + "/statuses", `{"state":"error"}`, 200},
	} {
		auth := map[string][2]string{
			"github": {"Authorization", "Bearer t"}, "gitlab": {"PRIVATE-TOKEN", "t"}, "gitea": {"Authorization", "token t"},
			"bitbucket": {"Authorization", "Bearer t"}, "bitbucket_server": {"Authorization", "Bearer t"}, "codeup": {"x-yunxiao-token", "t"},
		}[c.host]
		if code, m := post(t, srv, c.host, c.path, auth[0], auth[1], c.body); code != c.code {
			t.Errorf("%s %s %s: %d %v, want %d", c.host, c.path, c.body, code, m, c.code)
		}
	}
	// Requests is a copy.
	r := srv.Requests()
	r[0].Header.Set("Authorization", "changed")
	if srv.Requests()[0].Header.Get("Authorization") == "changed" {
		t.Error("Requests shares its headers with the server")
	}
	if srv.API("gogs") != "" {
		t.Error("API of an unknown host is not empty")
	}
}
