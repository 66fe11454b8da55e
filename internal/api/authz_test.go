package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/auth"
)

// The callers of the authorization matrix.
const (
	anonymous = iota
	viewer
	developer
	pipelineAdmin
	globalAdmin
	nonMember
	numCallers
)

var callerNames = [numCallers]string{"anonymous", "viewer", "developer", "pipeline admin", "global admin", "non-member"}

// matrixFixture is what every cell of the matrix may use.
type matrixFixture struct {
	e       *env
	users   [numCallers]testUser // users[anonymous] is the zero value
	seq     int
	runID   int64 // a run of "shared"
	tokenOf map[int]string
}

// next returns a new unique suffix.
func (f *matrixFixture) next() string {
	f.seq++
	return strconv.Itoa(f.seq)
}

// pipeline creates a pipeline with the matrix's members.
func (f *matrixFixture) pipeline() string {
	name := "p" + f.next()
	f.e.createPipeline(name, f.users[pipelineAdmin], map[*testUser]auth.Role{
		&f.users[viewer]: auth.Viewer, &f.users[developer]: auth.Developer,
	})
	return name
}

// agent registers a new agent (with a token of its own) and returns its name.
func (f *matrixFixture) agent() string {
	name := "agent" + f.next()
	f.e.register(f.e.newAgentToken(name, nil), name, strings.Repeat("a", 32))
	return name
}

// endpoint is a row of the matrix: prepare builds a fresh request for a caller, so that no
// cell depends on what another cell did.
type endpoint struct {
	route   string // "METHOD /path" as in docs/api.md
	prepare func(f *matrixFixture, caller int) request
	want    [numCallers]int
}

func jsonBody(s string) (string, *strings.Reader) { return "application/json", strings.NewReader(s) }

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		f := &matrixFixture{e: e}
		f.users[viewer] = e.user("vera", false)
		f.users[developer] = e.user("dev", false)
		f.users[pipelineAdmin] = e.user("padmin", false)
		f.users[globalAdmin] = e.user("root", true)
		f.users[nonMember] = e.user("nemo", false)
		f.pipeline() // p1 exists for the list
		shared := f.pipeline()
		f.runID = e.startRun(shared, f.users[pipelineAdmin].Token)
		sharedHook := e.enable(shared, f.users[pipelineAdmin], nil).token()
		firstDelivery := e.hook(sharedHook, "application/json", `{}`).answer(t).Delivery
		if firstDelivery == 0 {
			t.Fatal("the webhook of the shared pipeline stored no delivery")
		}

		const (
			ok        = http.StatusOK
			created   = http.StatusCreated
			accepted  = http.StatusAccepted
			noContent = http.StatusNoContent
			unauth    = http.StatusUnauthorized
			forbid    = http.StatusForbidden
			notFound  = http.StatusNotFound
		)
		get := func(path string) func(*matrixFixture, int) request {
			return func(*matrixFixture, int) request { return request{method: "GET", path: path} }
		}
		runPath := func(suffix string) func(*matrixFixture, int) request {
			return func(f *matrixFixture, _ int) request {
				return request{method: "GET", path: fmt.Sprintf("/api/v1/runs/%d%s", f.runID, suffix)}
			}
		}
		rows := []endpoint{
			{"POST /api/v1/tokens", func(f *matrixFixture, c int) request {
				rq := request{method: "POST", path: "/api/v1/tokens"}
				if c != anonymous {
					rq.basic = &[2]string{f.users[c].Username, f.users[c].Password}
				}
				return rq
			}, [numCallers]int{unauth, created, created, created, created, created}},
			{"GET /api/v1/tokens", get("/api/v1/tokens"), [numCallers]int{unauth, ok, ok, ok, ok, ok}},
			{"DELETE /api/v1/tokens/{id}", func(f *matrixFixture, c int) request {
				id := int64(1)
				if c != anonymous {
					_, h, _ := auth.NewToken()
					tok, err := f.e.st.TokenCreate(context.Background(), f.users[c].ID, "doomed", h)
					if err != nil {
						f.e.t.Fatal(err)
					}
					id = tok.ID
				}
				return request{method: "DELETE", path: fmt.Sprintf("/api/v1/tokens/%d", id)}
			}, [numCallers]int{unauth, noContent, noContent, noContent, noContent, noContent}},
			{"GET /api/v1/user", get("/api/v1/user"), [numCallers]int{unauth, ok, ok, ok, ok, ok}},
			{"PUT /api/v1/user/password", func(f *matrixFixture, c int) request {
				// The caller's own password changes; the fixture keeps the new one.
				pw := "new-password-" + f.next()
				ct, body := jsonBody(`{"current_password":"` + f.users[c].Password + `","new_password":"` + pw + `"}`)
				if c != anonymous {
					f.users[c].Password = pw
				}
				return request{method: "PUT", path: "/api/v1/user/password", contentType: ct, body: body}
			}, [numCallers]int{unauth, noContent, noContent, noContent, noContent, noContent}},
			{"GET /api/v1/users", get("/api/v1/users"), [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"POST /api/v1/users", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{"username":"new` + f.next() + `","password":"long-enough-pw"}`)
				return request{method: "POST", path: "/api/v1/users", contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, forbid, forbid, created, forbid}},
			{"PATCH /api/v1/users/{name}", func(f *matrixFixture, c int) request {
				u := f.e.user("victim"+f.next(), false)
				ct, body := jsonBody(`{"admin":true}`)
				return request{method: "PATCH", path: "/api/v1/users/" + u.Username, contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"DELETE /api/v1/users/{name}", func(f *matrixFixture, c int) request {
				u := f.e.user("victim"+f.next(), false)
				return request{method: "DELETE", path: "/api/v1/users/" + u.Username}
			}, [numCallers]int{unauth, forbid, forbid, forbid, noContent, forbid}},
			{"GET /api/v1/nodes", get("/api/v1/nodes"), [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			// A stream: only its status is read. Without ?pipeline= it is every user's (200).
			{"GET /api/v1/events", func(f *matrixFixture, c int) request {
				return request{method: "GET", path: "/api/v1/events?pipeline=" + shared, headOnly: true}
			}, [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"POST /api/v1/agent-tokens", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{"name":"agent` + f.next() + `"}`)
				return request{method: "POST", path: "/api/v1/agent-tokens", contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, forbid, forbid, created, forbid}},
			{"GET /api/v1/agent-tokens", get("/api/v1/agent-tokens"), [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"DELETE /api/v1/agent-tokens/{name}", func(f *matrixFixture, c int) request {
				name := "doomed" + f.next()
				f.e.newAgentToken(name, nil)
				return request{method: "DELETE", path: "/api/v1/agent-tokens/" + name}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"GET /api/v1/agents", get("/api/v1/agents"), [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"POST /api/v1/agents/{name}/pause", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/agents/" + f.agent() + "/pause"}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"POST /api/v1/agents/{name}/resume", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/agents/" + f.agent() + "/resume"}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
			{"GET /api/v1/pipelines", get("/api/v1/pipelines"), [numCallers]int{unauth, ok, ok, ok, ok, ok}},
			{"POST /api/v1/pipelines", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/pipelines", contentType: "application/yaml",
					body: strings.NewReader(testDefinition("new" + f.next()))}
			}, [numCallers]int{unauth, created, created, created, created, created}},
			{"POST /api/v1/pipelines/validate", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/pipelines/validate", contentType: "application/yaml",
					body: strings.NewReader(testDefinition("checked"))}
			}, [numCallers]int{unauth, ok, ok, ok, ok, ok}},
			{"GET /api/v1/pipelines/{name}", get("/api/v1/pipelines/" + shared), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"PUT /api/v1/pipelines/{name}", func(f *matrixFixture, c int) request {
				name := f.pipeline()
				return request{method: "PUT", path: "/api/v1/pipelines/" + name, contentType: "application/yaml",
					body: strings.NewReader(testDefinition(name))}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"DELETE /api/v1/pipelines/{name}", func(f *matrixFixture, c int) request {
				return request{method: "DELETE", path: "/api/v1/pipelines/" + f.pipeline()}
			}, [numCallers]int{unauth, forbid, forbid, noContent, noContent, notFound}},
			{"POST /api/v1/pipelines/{name}/trust", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/pipelines/" + f.pipeline() + "/trust"}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/untrust", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: "/api/v1/pipelines/" + f.pipeline() + "/untrust"}
			}, [numCallers]int{unauth, forbid, forbid, forbid, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/revisions", get("/api/v1/pipelines/" + shared + "/revisions"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/revisions/{rev}", get("/api/v1/pipelines/" + shared + "/revisions/1"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/revisions/{rev}/restore", func(f *matrixFixture, c int) request {
				name := f.pipeline()
				src := strings.Replace(testDefinition(name), "Say hello", "Say hello again", 1)
				if r := f.e.yaml("PUT", "/api/v1/pipelines/"+name, f.users[pipelineAdmin].Token, src); r.Status != http.StatusOK {
					f.e.t.Fatalf("revision 2 of %s: %s", name, r)
				}
				return request{method: "POST", path: "/api/v1/pipelines/" + name + "/revisions/1/restore"}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/members", get("/api/v1/pipelines/" + shared + "/members"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"PUT /api/v1/pipelines/{name}/members/{user}", func(f *matrixFixture, c int) request {
				u := f.e.user("member"+f.next(), false)
				ct, body := jsonBody(`{"role":"developer"}`)
				return request{method: "PUT", path: "/api/v1/pipelines/" + shared + "/members/" + u.Username, contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"DELETE /api/v1/pipelines/{name}/members/{user}", func(f *matrixFixture, c int) request {
				u := f.e.user("member"+f.next(), false)
				p, _ := f.e.st.PipelineGet(context.Background(), shared)
				if err := f.e.st.MemberSet(context.Background(), p.ID, u.ID, "viewer"); err != nil {
					f.e.t.Fatal(err)
				}
				return request{method: "DELETE", path: "/api/v1/pipelines/" + shared + "/members/" + u.Username}
			}, [numCallers]int{unauth, forbid, forbid, noContent, noContent, notFound}},
			{"POST /api/v1/pipelines/{name}/runs", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{"variables":{"abc":"x"}}`)
				return request{method: "POST", path: "/api/v1/pipelines/" + shared + "/runs", contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, created, created, created, notFound}},
			{"GET /api/v1/pipelines/{name}/runs", get("/api/v1/pipelines/" + shared + "/runs"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/schedules", get("/api/v1/pipelines/" + shared + "/schedules"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/revisions", get("/api/v1/pipelines/" + shared + "/revisions"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/revisions/{rev}", get("/api/v1/pipelines/" + shared + "/revisions/1"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/revisions/{rev}/restore", func(f *matrixFixture, c int) request {
				// A new revision each time, so revision 1 is never the current one.
				ctx := context.Background()
				p, err := f.e.st.PipelineGet(ctx, shared)
				if err != nil {
					f.e.t.Fatal(err)
				}
				if _, err := f.e.st.PipelineUpdate(ctx, p.ID, p.Source, p.Secrets, f.users[pipelineAdmin].ID); err != nil {
					f.e.t.Fatal(err)
				}
				return request{method: "POST", path: "/api/v1/pipelines/" + shared + "/revisions/1/restore"}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"GET /api/v1/runs/{id}", runPath(""), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/runs/{id}/log", runPath("/log"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/runs/{id}/notifications", runPath("/notifications"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"GET /api/v1/runs/{id}/commit-status", runPath("/commit-status"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"POST /api/v1/runs/{id}/cancel", func(f *matrixFixture, c int) request {
				id := f.e.startRun(shared, f.users[pipelineAdmin].Token)
				return request{method: "POST", path: fmt.Sprintf("/api/v1/runs/%d/cancel", id)}
			}, [numCallers]int{unauth, forbid, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/triggers/webhook", get("/api/v1/pipelines/" + shared + "/triggers/webhook"), [numCallers]int{unauth, ok, ok, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/triggers/webhook/enable", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{"secret":"s"}`)
				return request{method: "POST", path: "/api/v1/pipelines/" + f.pipeline() + "/triggers/webhook/enable", contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/triggers/webhook/disable", func(f *matrixFixture, c int) request {
				name := f.pipeline()
				f.e.enable(name, f.users[pipelineAdmin], nil)
				return request{method: "POST", path: "/api/v1/pipelines/" + name + "/triggers/webhook/disable"}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/triggers/webhook/rotate", func(f *matrixFixture, c int) request {
				name := f.pipeline()
				f.e.enable(name, f.users[pipelineAdmin], nil)
				return request{method: "POST", path: "/api/v1/pipelines/" + name + "/triggers/webhook/rotate"}
			}, [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/triggers/webhook/audit", get("/api/v1/pipelines/" + shared + "/triggers/webhook/audit"), [numCallers]int{unauth, forbid, forbid, ok, ok, notFound}},
			{"POST /api/v1/pipelines/{name}/triggers/webhook/dry-run", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{"abc":"x"}`)
				return request{method: "POST", path: "/api/v1/pipelines/" + shared + "/triggers/webhook/dry-run", contentType: ct, body: body}
			}, [numCallers]int{unauth, forbid, ok, ok, ok, notFound}},
			{"GET /api/v1/pipelines/{name}/deliveries", get("/api/v1/pipelines/" + shared + "/deliveries"), [numCallers]int{unauth, forbid, ok, ok, ok, notFound}},
			{"GET /api/v1/deliveries/{id}", get(fmt.Sprintf("/api/v1/deliveries/%d", firstDelivery)), [numCallers]int{unauth, forbid, ok, ok, ok, notFound}},
			{"POST /api/v1/deliveries/{id}/redeliver", func(f *matrixFixture, c int) request {
				return request{method: "POST", path: fmt.Sprintf("/api/v1/deliveries/%d/redeliver", firstDelivery)}
			}, [numCallers]int{unauth, forbid, accepted, accepted, accepted, notFound}},
			// The token is the credential: a Bearer token neither helps nor hurts.
			{"POST /pipeline/webhook/{token}", func(f *matrixFixture, c int) request {
				ct, body := jsonBody(`{}`)
				return request{method: "POST", path: "/pipeline/webhook/" + sharedHook, contentType: ct, body: body}
			}, [numCallers]int{accepted, accepted, accepted, accepted, accepted, accepted}},
			{"GET /healthz", get("/healthz"), [numCallers]int{ok, ok, ok, ok, ok, ok}},
			{"GET /readyz", get("/readyz"), [numCallers]int{ok, ok, ok, ok, ok, ok}},
			{"GET /metrics", get("/metrics"), [numCallers]int{unauth, forbid, forbid, forbid, ok, forbid}},
		}

		// Every endpoint of the contract has a row.
		covered := map[string]bool{}
		for _, row := range rows {
			covered[row.route] = true
		}
		for _, route := range documentedRoutes(t) {
			if !covered[route] {
				t.Errorf("docs/api.md lists %s but the matrix has no row for it", route)
			}
		}

		var mismatches []string
		for _, row := range rows {
			for c := range numCallers {
				rq := row.prepare(f, c)
				if c != anonymous && rq.basic == nil {
					rq.token = f.users[c].Token
				}
				got := e.do(rq)
				if got.Status != row.want[c] {
					mismatches = append(mismatches, fmt.Sprintf("%-48s %-15s got %d, want %d (%s)",
						row.route, callerNames[c], got.Status, row.want[c], truncate(string(got.Body), 120)))
				}
			}
		}
		if len(mismatches) > 0 {
			t.Errorf("%d cells of the authorization matrix are wrong:\n%s", len(mismatches), strings.Join(mismatches, "\n"))
		}
	})
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// documentedRoutes reads the endpoint table of docs/api.md: "| `METHOD /path` | …".
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatalf("read the API contract: %v", err)
	}
	re := regexp.MustCompile("(?m)^\\| `((?:GET|POST|PUT|PATCH|DELETE) /[^`]*)`")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		out = append(out, m[1])
	}
	if len(out) < 20 {
		t.Fatalf("found only %d endpoints in docs/api.md; did its table change shape?", len(out))
	}
	return out
}
