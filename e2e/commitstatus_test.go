package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/commitstatus/hosttest"
)

// statusHost is one code host a commit status e2e pipeline reports to.
type statusHost struct {
	kind    string // source.status_host
	webhook string // the push payload's host (send)
	repo    string // source.status_repo
	auth    string // the header that carries the token
	prefix  string // what that header holds before the token
	path    string // the report's path below the API base, %s = the commit
}

var statusHosts = []statusHost{
	{"github", "github", "acme/app", "Authorization", "Bearer ", "/repos/acme/app/statuses/%s"},
	{"gitlab", "gitlab", "acme/app", "Private-Token", "", "/projects/acme%%2Fapp/statuses/%s"},
	{"gitea", "gitea", "acme/app", "Authorization", "token ", "/repos/acme/app/statuses/%s"},
	{"bitbucket", "bitbucket", "acme/app", "Authorization", "Bearer ", "/repositories/acme/app/commit/%s/statuses/build"},
	{"bitbucket_server", "bitbucket-server", "ACME/app", "Authorization", "Bearer ", "/rest/api/latest/projects/ACME/repos/app/commits/%s/builds"},
	{"codeup", "codeup", "org1/acme/app", "X-Yunxiao-Token", "", "/oapi/v1/codeup/organizations/org1/repositories/org1%%2Facme%%2Fapp/commits/%s/statuses"},
}

// statusPipeline is a pipeline of the local repository bare whose runs report to h's API on
// hs with the token "tok-<kind>"; its job waits for the file gate.
func statusPipeline(h statusHost, hs *hosttest.Server, bare, gate string) string {
	return fmt.Sprintf(`name: st-%s
variables:
  STATUS_TOKEN: {secret: true, default: "tok-%s"}
source:
  url: %s
  branches: [main]
  status_token: STATUS_TOKEN
  status_host: %s
  status_api: %s
  status_repo: %s
stages:
  - name: build
    jobs:
      - name: wait
        steps:
          - run: while [ ! -f %s ]; do sleep 0.1; done
`, strings.ReplaceAll(h.kind, "_", "-"), h.kind, bare, h.kind, hs.API(h.kind), h.repo, gate)
}

// reportsOf are the reports hs got from kind about run id (their body names its page).
func reportsOf(hs *hosttest.Server, kind string, id int64) []hosttest.Request {
	var out []hosttest.Request
	for _, r := range hs.Requests() {
		if r.Host == kind && strings.Contains(string(r.Raw), "/runs/"+strconv.FormatInt(id, 10)+`"`) {
			out = append(out, r)
		}
	}
	return out
}

// said reports whether a report's description says what (e.g. "is running").
func said(r hosttest.Request, what string) bool {
	d, _ := r.Body["description"].(string)
	return strings.Contains(d, what)
}

type commitStatusView struct {
	Host      string `json:"host"`
	Repo      string `json:"repo"`
	State     string `json:"state"`
	Status    string `json:"status"`
	SentState string `json:"sent_state"`
	History   []struct {
		State      string `json:"state"`
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
	} `json:"history"`
}

func (s *server) commitStatus(token string, runID int64) *commitStatusView {
	s.t.Helper()
	var v struct {
		CommitStatus *commitStatusView `json:"commit_status"`
	}
	if code := s.api(token, "GET", "/api/v1/runs/"+strconv.FormatInt(runID, 10)+"/commit-status", nil, &v); code != 200 {
		s.t.Fatalf("GET commit-status of run %d: %d", runID, code)
	}
	return v.CommitStatus
}

// TestCommitStatusesPerHost: for each code host, a push signed as the host signs it starts a
// run of a pipeline whose source has a status_token; the run reports to a recording server
// that answers as that host does: the host's path for the pushed commit, the token in the
// host's auth header, the running state while the job runs (the job waits until the host saw
// it), then the final state naming the run page. flowd commit-status and the API show it. On
// PostgreSQL the host is down (503) when a run ends, the server is SIGKILLed, and a restarted
// server reports the final state once the host is back, once.
func TestCommitStatusesPerHost(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	const secret = "s3cret-hook"
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			hs := hosttest.New(t)
			dir, err := os.MkdirTemp("", "flowd-gate-") // the steps' users must read it
			if err != nil || os.Chmod(dir, 0o755) != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			env := []string{"FLOWD_TEST_NOTIFY_BACKOFF=200ms"}
			data, dsn := newDatabase(t, dialect)
			s := startServerEnv(t, data, dsn, env)
			tok := s.token("admin", adminPassword)
			push := gitPush{Ref: "refs/heads/main", Before: rp.MainPrev, After: rp.Main, Repo: rp.Bare}
			hosts := statusHosts
			if dialect != "sqlite" {
				hosts = statusHosts[:1]
			}
			hooks := map[string]string{}
			for _, h := range hosts {
				hs.SetToken(h.kind, "tok-"+h.kind)
				gate := filepath.Join(dir, h.kind)
				hook := s.enableHook(tok, statusPipeline(h, hs, rp.Bare, gate), "st-"+strings.ReplaceAll(h.kind, "_", "-"), secret)
				hooks[h.kind] = hook
				code, a := send(t, hook, h.webhook, push, secret)
				if code != 202 || a.Run == nil {
					t.Fatalf("%s push: %d %+v", h.kind, code, a)
				}
				id := a.Run.ID
				waitFor(t, h.kind+" to hear the run is running", func() bool {
					rs := reportsOf(hs, h.kind, id)
					return len(rs) > 0 && said(rs[len(rs)-1], "is running")
				})
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				waitFor(t, h.kind+" to hear the run succeeded", func() bool {
					rs := reportsOf(hs, h.kind, id)
					return len(rs) > 0 && said(rs[len(rs)-1], "succeeded")
				})
				rs := reportsOf(hs, h.kind, id)
				for i, r := range rs {
					if r.Method != "POST" || r.Path != fmt.Sprintf(h.path, rp.Main) || r.Header.Get(h.auth) != h.prefix+"tok-"+h.kind ||
						r.Code < 200 || r.Code > 299 || !strings.Contains(string(r.Raw), "st-") {
						t.Errorf("%s report %d: %s %s %s=%q → %d %s", h.kind, i, r.Method, r.Path, h.auth, r.Header.Get(h.auth), r.Code, r.Raw)
					}
				}
				if n := len(rs); n > 3 {
					t.Errorf("%s got %d reports of one run, want at most queued, running, success", h.kind, n)
				}
				v := s.commitStatus(tok, id)
				if v == nil || v.Host != h.kind || v.Repo != h.repo || v.Status != "sent" || v.SentState != "success" || len(v.History) != len(rs) {
					t.Errorf("%s: commit status %+v, want sent success to %s after %d attempts", h.kind, v, h.repo, len(rs))
				}
				out, _, code2 := s.cli(tok, "commit-status", strconv.FormatInt(id, 10))
				if code2 != 0 || !strings.Contains(out, "sent  success to "+h.kind+" "+h.repo+"@"+rp.Main[:12]) || strings.Contains(out, "tok-"+h.kind) {
					t.Errorf("flowd commit-status: %d\n%s", code2, out)
				}
			}
			if dialect == "sqlite" {
				// Each host took at least the running and the final state: counted as sent.
				code, metrics := metricsStatus(t, s.URL+"/metrics", tok)
				for _, h := range hosts {
					m := regexp.MustCompile(`flowd_commit_status_reports_total\{host="` + h.kind + `",result="sent"\} (\d+)`).FindStringSubmatch(metrics)
					if n, _ := strconv.Atoi(firstGroup(m)); code != 200 || n < 2 {
						t.Errorf("metrics: %d, %s sent %q, want at least 2", code, h.kind, firstGroup(m))
					}
				}
				return
			}

			// The host is down when the run ends; the server crashes; its successor reports.
			hs.FailNext("github", 1<<20, 503)
			code, a := send(t, hooks["github"], "github", push, secret)
			if code != 202 || a.Run == nil {
				t.Fatalf("second push: %d %+v", code, a)
			}
			id := a.Run.ID
			waitFor(t, "a refused report of the run's success", func() bool {
				v := s.commitStatus(tok, id)
				return v != nil && v.State == "success" && v.Status == "pending" && len(v.History) > 0 &&
					v.History[len(v.History)-1].StatusCode == 503
			})
			s.crash()
			hs.FailNext("github", 0, 0)
			s = startServerEnv(t, data, dsn, env)
			tok = s.token("admin", adminPassword)
			waitFor(t, "the restarted server to report the success", func() bool {
				v := s.commitStatus(tok, id)
				return v != nil && v.Status == "sent" && v.SentState == "success"
			})
			accepted := 0
			for _, r := range reportsOf(hs, "github", id) {
				if said(r, "succeeded") && r.Code == 201 {
					accepted++
				}
			}
			if accepted != 1 {
				t.Errorf("the host accepted the run's success %d times, want once", accepted)
			}
		})
	}
}

// firstGroup is a regexp match's first group, "" when it did not match.
func firstGroup(m []string) string {
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

// TestCommitStatusesTwoServers: two servers on one PostgreSQL both report commit statuses; each
// run's final state reaches the host exactly once, and no run gets more reports than it has
// states (queued, running, success), whichever server runs its job or claims its report.
func TestCommitStatusesTwoServers(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	hs := hosttest.New(t)
	hs.SetToken("github", "tok-github")
	env := []string{"FLOWD_TEST_NOTIFY_BACKOFF=200ms"}
	c := startCluster(t, nodeSpec{Name: "a", Env: env}, nodeSpec{Name: "b", Env: env})
	a, b := c.Nodes[0], c.Nodes[1]
	dir, err := os.MkdirTemp("", "flowd-gate-")
	if err != nil || os.Chmod(dir, 0o755) != nil || os.WriteFile(filepath.Join(dir, "github"), nil, 0o644) != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a.createPipeline(c.Admin, statusPipeline(statusHosts[0], hs, rp.Bare, filepath.Join(dir, "github")))
	var ids []int64
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		ids = append(ids, s.startRun(c.Admin, "st-github"))
	}
	for _, id := range ids {
		waitFor(t, "run "+strconv.FormatInt(id, 10)+" reported", func() bool {
			v := b.commitStatus(c.Admin, id)
			return v != nil && v.Status == "sent" && v.SentState == "success"
		})
	}
	for _, id := range ids {
		rs := reportsOf(hs, "github", id)
		finals := 0
		for _, r := range rs {
			if said(r, "succeeded") && r.Code == 201 {
				finals++
			}
		}
		if finals != 1 || len(rs) > 3 {
			t.Errorf("run %d: %d reports, %d of its success; want at most 3, one success: %s", id, len(rs), finals, describeReports(rs))
		}
	}
}

// describeReports is each report's description and answer, for failure messages.
func describeReports(rs []hosttest.Request) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %v → %d", r.Body["description"], r.Code)
	}
	return b.String()
}
