package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// seen is one request the fake server received.
type seen struct {
	Method, Path, Query, Auth, ContentType, Body string
}

// fake starts a server that records each request and answers with h.
func fake(t *testing.T, h http.HandlerFunc) (*Client, *[]seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", "tok123", srv.Client()), &got
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const runJSON = `{"id":17,"number":3,"pipeline":"hello","revision":2,"status":"running","trigger":"manual",
"triggered_by":"alice","variables":{"abc":"456"},"created_at":"2026-01-02T03:04:05Z",
"started_at":"2026-01-02T03:04:06Z","finished_at":null,"url":"http://x/runs/17","api_url":"http://x/api/v1/runs/17",
"stages":[{"name":"build","status":"running","jobs":[{"id":5,"name":"say","status":"running",
"started_at":"2026-01-02T03:04:06Z","finished_at":null,"steps":[{"id":9,"name":"echo",
"status":"success","exit_code":0,"started_at":"2026-01-02T03:04:06Z","finished_at":"2026-01-02T03:04:07Z"},
{"id":10,"name":"two","status":"queued","exit_code":null,"started_at":null,"finished_at":null}]}]}]}`

func TestRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		answer string
		status int
		call   func(c *Client) error
		want   seen // Auth "" means the bearer token
	}{
		{"me", `{"username":"alice","admin":true}`, 200, func(c *Client) error {
			u, err := c.Me(ctx)
			if err == nil && (u.Username != "alice" || !u.Admin) {
				t.Errorf("Me = %+v", u)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/user"}},
		{"user create", `{"username":"bob"}`, 201, func(c *Client) error {
			_, err := c.UserCreate(ctx, NewUser{Username: "bob", Password: "secret123", Admin: true})
			return err
		}, seen{Method: "POST", Path: "/api/v1/users", ContentType: "application/json", Body: `{"username":"bob","password":"secret123","admin":true}`}},
		{"user disable", `{"username":"bob","disabled":true}`, 200, func(c *Client) error {
			yes := true
			u, err := c.UserUpdate(ctx, "bob", UserChanges{Disabled: &yes})
			if err == nil && !u.Disabled {
				t.Errorf("UserUpdate = %+v", u)
			}
			return err
		}, seen{Method: "PATCH", Path: "/api/v1/users/bob", ContentType: "application/json", Body: `{"disabled":true}`}},
		{"user delete", ``, 204, func(c *Client) error { return c.UserDelete(ctx, "bob") },
			seen{Method: "DELETE", Path: "/api/v1/users/bob"}},
		{"user list", `{"users":[{"username":"a"},{"username":"b"}]}`, 200, func(c *Client) error {
			us, err := c.UserList(ctx)
			if err == nil && len(us) != 2 {
				t.Errorf("UserList = %+v", us)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/users"}},
		{"token list", `{"tokens":[{"id":4,"name":"cli","created_at":"2026-01-02T03:04:05Z","last_used_at":null}]}`, 200, func(c *Client) error {
			ts, err := c.TokenList(ctx)
			if err == nil && (len(ts) != 1 || ts[0].ID != 4 || ts[0].LastUsedAt != nil) {
				t.Errorf("TokenList = %+v", ts)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/tokens"}},
		{"token delete", ``, 204, func(c *Client) error { return c.TokenDelete(ctx, 4) },
			seen{Method: "DELETE", Path: "/api/v1/tokens/4"}},
		{"pipeline list", `{"pipelines":[{"name":"hello","revision":2,"role":"admin","last_run":{"id":1,"number":1,"status":"success"}}]}`, 200, func(c *Client) error {
			ps, err := c.PipelineList(ctx)
			if err == nil && (len(ps) != 1 || ps[0].LastRun == nil || ps[0].LastRun.Status != run.Success) {
				t.Errorf("PipelineList = %+v", ps)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines"}},
		{"pipeline get", `{"name":"hello","revision":2,"yaml":"name: hello\n","variables":[{"name":"abc","default":"123","secret":false,"options":null,"description":""}],"stages":[{"name":"build","jobs":[{"name":"say","steps":["echo"]}]}],"role":"viewer"}`, 200, func(c *Client) error {
			pl, err := c.PipelineGet(ctx, "hello")
			if err == nil && (pl.YAML != "name: hello\n" || pl.Variables[0].Default != "123" || pl.Stages[0].Jobs[0].Steps[0] != "echo") {
				t.Errorf("PipelineGet = %+v", pl)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello"}},
		{"pipeline create", `{"name":"hello","revision":1}`, 201, func(c *Client) error {
			_, err := c.PipelineCreate(ctx, []byte("name: hello\n"))
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines", ContentType: "application/yaml", Body: "name: hello\n"}},
		{"pipeline update", `{"name":"hello","revision":2}`, 200, func(c *Client) error {
			_, err := c.PipelineUpdate(ctx, "hello", []byte("name: hello\n"))
			return err
		}, seen{Method: "PUT", Path: "/api/v1/pipelines/hello", ContentType: "application/yaml", Body: "name: hello\n"}},
		{"pipeline delete escapes", ``, 204, func(c *Client) error { return c.PipelineDelete(ctx, "a/../b") },
			seen{Method: "DELETE", Path: "/api/v1/pipelines/a%2F..%2Fb"}},
		{"member list", `{"members":[{"username":"alice","role":"admin"}]}`, 200, func(c *Client) error {
			ms, err := c.MemberList(ctx, "hello")
			if err == nil && (len(ms) != 1 || ms[0].Role != "admin") {
				t.Errorf("MemberList = %+v", ms)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/members"}},
		{"member set", `{"username":"bob","role":"developer"}`, 200, func(c *Client) error {
			m, err := c.MemberSet(ctx, "hello", "bob", "developer")
			if err == nil && m.Role != "developer" {
				t.Errorf("MemberSet = %+v", m)
			}
			return err
		}, seen{Method: "PUT", Path: "/api/v1/pipelines/hello/members/bob", ContentType: "application/json", Body: `{"role":"developer"}`}},
		{"member delete", ``, 204, func(c *Client) error { return c.MemberDelete(ctx, "hello", "bob") },
			seen{Method: "DELETE", Path: "/api/v1/pipelines/hello/members/bob"}},
		{"run create", `{"run":` + runJSON + `,"ignored":["nope"]}`, 201, func(c *Client) error {
			r, ignored, err := c.RunCreate(ctx, "hello", map[string]string{"abc": "456", "nope": "1"})
			if err == nil && (r.ID != 17 || r.Number != 3 || len(ignored) != 1 || ignored[0] != "nope") {
				t.Errorf("RunCreate = %+v, %v", r, ignored)
			}
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/runs", ContentType: "application/json", Body: `{"variables":{"abc":"456","nope":"1"}}`}},
		{"run create without vars", `{"run":{"id":1},"ignored":[]}`, 201, func(c *Client) error {
			_, _, err := c.RunCreate(ctx, "hello", nil)
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/runs", ContentType: "application/json", Body: `{}`}},
		{"run list", `{"runs":[{"id":17,"number":3,"status":"failed"}],"next_before":3}`, 200, func(c *Client) error {
			pg, err := c.RunList(ctx, "hello", RunListParams{Limit: 5, Before: 9, Status: "failed", Trigger: "webhook"})
			if err == nil && (len(pg.Runs) != 1 || pg.NextBefore == nil || *pg.NextBefore != 3 || pg.Runs[0].Stages != nil) {
				t.Errorf("RunList = %+v", pg)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/runs", Query: "before=9&limit=5&status=failed&trigger=webhook"}},
		{"run get", runJSON, 200, func(c *Client) error {
			r, err := c.RunGet(ctx, 17)
			if err != nil {
				return err
			}
			st := r.Stages[0].Jobs[0].Steps
			if r.Status != run.Running || r.FinishedAt != nil || r.StartedAt == nil || len(st) != 2 ||
				st[0].ExitCode == nil || *st[0].ExitCode != 0 || st[1].ExitCode != nil || st[1].StartedAt != nil ||
				st[0].Duration(time.Time{}) != time.Second || r.Variables["abc"] != "456" ||
				r.URL != "http://x/runs/17" || r.APIURL != "http://x/api/v1/runs/17" {
				t.Errorf("RunGet = %+v", r)
			}
			return nil
		}, seen{Method: "GET", Path: "/api/v1/runs/17"}},
		{"run cancel", `{"id":17,"status":"canceled"}`, 200, func(c *Client) error {
			r, err := c.RunCancel(ctx, 17)
			if err == nil && r.Status != run.Canceled {
				t.Errorf("RunCancel = %+v", r)
			}
			return err
		}, seen{Method: "POST", Path: "/api/v1/runs/17/cancel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.answer == "" {
					w.WriteHeader(tt.status)
					return
				}
				reply(w, tt.status, tt.answer)
			})
			if err := tt.call(c); err != nil {
				t.Fatalf("error: %v", err)
			}
			want := tt.want
			if want.Auth == "" {
				want.Auth = "Bearer tok123"
			}
			if len(*got) != 1 || (*got)[0] != want {
				t.Errorf("requests = %+v, want %+v", *got, want)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if !ok || u != "alice" || pw != "pa:ss word" {
			w.Header().Set("WWW-Authenticate", `Basic realm="flowd"`)
			reply(w, 401, `{"error":{"code":"unauthorized","message":"wrong username or password"}}`)
			return
		}
		reply(w, 201, `{"id":7,"name":"laptop","token":"fl_abc","username":"alice"}`)
	})
	tok, err := c.Login(context.Background(), "alice", "pa:ss word", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token != "fl_abc" || tok.ID != 7 || tok.Username != "alice" {
		t.Errorf("Login = %+v", tok)
	}
	r := (*got)[0]
	if r.Method != "POST" || r.Path != "/api/v1/tokens" || !strings.HasPrefix(r.Auth, "Basic ") ||
		r.Body != `{"name":"laptop"}` || r.ContentType != "application/json" {
		t.Errorf("request = %+v", r)
	}

	_, err = c.Login(context.Background(), "alice", "wrong", "")
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "unauthorized" || e.Error() != "wrong username or password" {
		t.Fatalf("wrong password: %#v", err)
	}
	if r := (*got)[1]; r.Body != "" || r.ContentType != "" {
		t.Errorf("login without a name sent a body: %+v", r)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		status     int
		want       Error
		text       string
	}{
		{"pipeline problems", `{"error":{"code":"invalid_pipeline","message":"the pipeline definition has 2 problems","problems":[{"line":3,"column":5,"message":"unknown field \"stagez\""},{"line":9,"column":1,"message":"stages: at least one stage is required"}]}}`, 422,
			Error{Status: 422, Code: "invalid_pipeline", Message: "the pipeline definition has 2 problems", Problems: []Problem{{Line: 3, Column: 5, Message: `unknown field "stagez"`}, {Line: 9, Column: 1, Message: "stages: at least one stage is required"}}},
			"the pipeline definition has 2 problems\n  3:5: unknown field \"stagez\"\n  9:1: stages: at least one stage is required"},
		{"variable problems", `{"error":{"code":"invalid_variables","message":"bad variables","problems":[{"key":"TARGET","message":"must be one of staging, production"}]}}`, 422,
			Error{Status: 422, Code: "invalid_variables", Message: "bad variables", Problems: []Problem{{Key: "TARGET", Message: "must be one of staging, production"}}},
			"bad variables\n  TARGET: must be one of staging, production"},
		{"not found", `{"error":{"code":"not_found","message":"no pipeline \"x\""}}`, 404,
			Error{Status: 404, Code: "not_found", Message: `no pipeline "x"`}, `no pipeline "x"`},
		{"not flowd", "<html>Bad Gateway</html>", 502,
			Error{Status: 502, Message: "server answered 502 Bad Gateway: <html>Bad Gateway</html> (is --server the address of a flowd server?)"},
			"server answered 502 Bad Gateway: <html>Bad Gateway</html> (is --server the address of a flowd server?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) { reply(w, tt.status, tt.body) })
			_, err := c.PipelineCreate(context.Background(), []byte("name: x\n"))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %#v, want *Error", err)
			}
			gotJSON, _ := json.Marshal(e)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("error = %s\nwant    %s", gotJSON, wantJSON)
			}
			if err.Error() != tt.text {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), tt.text)
			}
			if !IsStatus(err, tt.status) {
				t.Errorf("IsStatus(%d) = false", tt.status)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := New(srv.URL, "t", nil).Me(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the flowd server at "+srv.URL) {
		t.Errorf("err = %v", err)
	}
}

func TestPipelineApply(t *testing.T) {
	t.Parallel()
	yaml := []byte("# my pipeline\ndescription: x\nname: \"hello\"  # the name\nstages: []\n")
	t.Run("creates", func(t *testing.T) {
		t.Parallel()
		c, got := fake(t, func(w http.ResponseWriter, r *http.Request) { reply(w, 201, `{"name":"hello","revision":1}`) })
		pl, created, err := c.PipelineApply(context.Background(), yaml)
		if err != nil || !created || pl.Revision != 1 || len(*got) != 1 {
			t.Errorf("apply = %+v, %v, %v; requests %+v", pl, created, err, *got)
		}
	})
	t.Run("updates on conflict", func(t *testing.T) {
		t.Parallel()
		c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				reply(w, 409, `{"error":{"code":"conflict","message":"pipeline \"hello\" exists"}}`)
				return
			}
			reply(w, 200, `{"name":"hello","revision":2}`)
		})
		pl, created, err := c.PipelineApply(context.Background(), yaml)
		if err != nil || created || pl.Revision != 2 {
			t.Fatalf("apply = %+v, %v, %v", pl, created, err)
		}
		if len(*got) != 2 || (*got)[1].Method != "PUT" || (*got)[1].Path != "/api/v1/pipelines/hello" || (*got)[1].Body != string(yaml) {
			t.Errorf("requests = %+v", *got)
		}
	})
	t.Run("invalid is not retried", func(t *testing.T) {
		t.Parallel()
		c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
			reply(w, 422, `{"error":{"code":"invalid_pipeline","message":"bad","problems":[{"line":1,"column":1,"message":"x"}]}}`)
		})
		_, _, err := c.PipelineApply(context.Background(), yaml)
		if !IsStatus(err, 422) || len(*got) != 1 {
			t.Errorf("err = %v, requests %+v", err, *got)
		}
	})
}

func TestStepNames(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`["a","b"]`, `[{"name":"a","run":"x"},{"name":"b"}]`} {
		var s StepNames
		if err := json.Unmarshal([]byte(in), &s); err != nil || strings.Join(s, ",") != "a,b" {
			t.Errorf("decode %s = %v, %v", in, s, err)
		}
	}
}

func TestPipelineName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"name: hello\n":                         "hello",
		"name:hello":                            "hello",
		"---\nname: 'my-app'\nstages: []\n":     "my-app",
		"description: d\nname: app # comment\n": "app",
		"name: app\r\nx: 1\r\n":                 "app",
		"  name: nested\n":                      "",
		"stages:\n  - name: build\n":            "",
		"name: # nothing\n":                     "",
		"":                                      "",
	}
	for in, want := range tests {
		if got := PipelineName([]byte(in)); got != want {
			t.Errorf("PipelineName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLogStreams checks that Log hands each piece of a followed log to w as it arrives, before
// the server has finished the response.
func TestLogStreams(t *testing.T) {
	t.Parallel()
	next := make(chan string)
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for line := range next {
			io.WriteString(w, line)
			w.(http.Flusher).Flush()
		}
	})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- c.Log(context.Background(), 17, true, pw)
		pw.Close()
	}()
	buf := make([]byte, 100)
	for _, line := range []string{"line one\n", "line two\n"} {
		next <- line
		n, err := io.ReadAtLeast(pr, buf, len(line))
		if err != nil || string(buf[:n]) != line {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, line)
		}
	}
	close(next)
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := (*got)[0]; r.Path != "/api/v1/runs/17/log" || r.Query != "follow=1" {
		t.Errorf("request = %+v", r)
	}
}

func TestLogError(t *testing.T) {
	t.Parallel()
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 404, `{"error":{"code":"not_found","message":"no run 99"}}`)
	})
	var out strings.Builder
	err := c.Log(context.Background(), 99, false, &out)
	if !IsStatus(err, 404) || out.Len() != 0 || (*got)[0].Query != "" {
		t.Errorf("err = %v, out %q, request %+v", err, out.String(), (*got)[0])
	}
}

func TestLogCanceled(t *testing.T) {
	t.Parallel()
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "started\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- c.Log(ctx, 1, true, pw) }()
	buf := make([]byte, 8)
	if _, err := io.ReadFull(pr, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestEveryRequestHeaders: the one request builder gives API calls (send) and webhook answers
// (sendAny) the same Accept, User-Agent and credentials, and a Content-Type only with a body.
func TestEveryRequestHeaders(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []http.Header
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/redeliver") {
			reply(w, 422, `{"error":{"code":"invalid_variables","message":"bad"},"trace":[{"step":"variables","ok":false}]}`)
			return
		}
		reply(w, 200, `{"username":"alice"}`)
	})
	ctx := context.Background()
	if _, err := c.Me(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserCreate(ctx, NewUser{Username: "bob", Password: "password1"}); err != nil {
		t.Fatal(err)
	}
	if status, _, err := c.DeliveryRedeliver(ctx, 7); err != nil || status != 422 {
		t.Fatalf("redeliver = %d, %v", status, err)
	}
	if _, err := c.Login(ctx, "alice", "pw", "cli"); err != nil {
		t.Fatal(err)
	}
	wantType := []string{"", "application/json", "", "application/json"}
	if len(got) != len(wantType) {
		t.Fatalf("%d requests, want %d", len(got), len(wantType))
	}
	for i, h := range got {
		if h.Get("Accept") != "application/json" || h.Get("User-Agent") != "flowd-client" || h.Get("Content-Type") != wantType[i] {
			t.Errorf("request %d: headers = %v", i, h)
		}
		wantAuth := "Bearer tok123"
		if i == 3 {
			wantAuth = "Basic YWxpY2U6cHc=" // alice:pw
		}
		if h.Get("Authorization") != wantAuth {
			t.Errorf("request %d: Authorization = %q, want %q", i, h.Get("Authorization"), wantAuth)
		}
	}
}
