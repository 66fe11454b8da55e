package api_test

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
)

// boxedDefinition has a job in the pipeline's image and one in its own, with options and a
// service.
const boxedDefinition = `name: boxed
image: golang:1.26
stages:
  - name: build
    jobs:
      - name: compile
        steps: [{run: go build}]
      - name: db
        image: alpine:3
        container: {user: "1000", cpus: 2, memory: 2Gi, pull: never}
        services: [postgres:16]
        steps: [{run: psql -h postgres}]
`

// TestPolicyRefusesAtSave: a server's Policy is checked by create, update and validate, over
// real HTTP: a job without an image on a server that runs jobs only in containers, and a
// container over the server's maxima, are 422 invalid_pipeline with each problem at its line
// and column, and nothing is stored. A definition within the policy is saved, and its runs
// show each job's container.
func TestPolicyRefusesAtSave(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, func(s *api.Server) {
			s.Policy = pipeline.Policy{RequireImage: true, MaxCPUs: 2, MaxMemory: 2 << 30}
		})
		alice := e.user("alice", false)

		refused := func(method, path, src string, want []problem) {
			t.Helper()
			r := e.yaml(method, path, alice.Token, src)
			if r.Status != http.StatusUnprocessableEntity {
				t.Fatalf("%s %s: %s, want 422", method, path, r)
			}
			var ans errorAnswer
			r.json(t, &ans)
			if ans.Error.Code != "invalid_pipeline" || !strings.HasPrefix(ans.Error.Message, "this server does not allow the pipeline definition") {
				t.Errorf("%s %s: error %q %q", method, path, ans.Error.Code, ans.Error.Message)
			}
			if !reflect.DeepEqual(ans.Error.Problems, want) {
				t.Errorf("%s %s: problems =\n%+v\nwant\n%+v", method, path, ans.Error.Problems, want)
			}
		}
		hostJob := []problem{{Line: 14, Column: 15, Message: `this server runs jobs only in containers (--allow-host-jobs=false): give job "say" an image: (or the pipeline one), such as image: golang:1.26`}}
		refused("POST", "/api/v1/pipelines", testDefinition("hello"), hostJob)
		refused("POST", "/api/v1/pipelines/validate", testDefinition("hello"), hostJob)
		if r := e.call("GET", "/api/v1/pipelines/hello", alice.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("a refused pipeline was stored: %s", r)
		}
		big := strings.Replace(boxedDefinition, "cpus: 2, memory: 2Gi", "cpus: 2.5, memory: 4Gi", 1)
		overMax := []problem{
			{Line: 10, Column: 41, Message: `job "db": cpus 2.5 is over this server's maximum of 2 (--container-max-cpus)`},
			{Line: 10, Column: 54, Message: `job "db": memory 4Gi is over this server's maximum of 2Gi (--container-max-memory)`},
		}
		refused("POST", "/api/v1/pipelines", big, overMax)

		// Within the policy: saved, with each job's image shown.
		r := e.yaml("POST", "/api/v1/pipelines", alice.Token, boxedDefinition)
		if r.Status != http.StatusCreated {
			t.Fatalf("create within the policy: %s", r)
		}
		var p struct {
			Revision int64 `json:"revision"`
			Stages   []struct {
				Jobs []struct {
					Name  string `json:"name"`
					Image string `json:"image"`
				} `json:"jobs"`
			} `json:"stages"`
		}
		r.json(t, &p)
		if jobs := p.Stages[0].Jobs; len(jobs) != 2 || jobs[0].Image != "golang:1.26" || jobs[1].Image != "alpine:3" {
			t.Errorf("pipeline jobs = %+v, want their images", jobs)
		}
		// An update that breaks the policy is refused, and the pipeline keeps its revision.
		refused("PUT", "/api/v1/pipelines/boxed", big, overMax)
		refused("POST", "/api/v1/pipelines/validate?pipeline=boxed", big, overMax)
		if r := e.call("GET", "/api/v1/pipelines/boxed", alice.Token, nil); !strings.Contains(string(r.Body), `"revision":1`) {
			t.Errorf("after a refused update: %s", r)
		}
		if r := e.yaml("POST", "/api/v1/pipelines/validate", alice.Token, boxedDefinition); r.Status != http.StatusOK {
			t.Errorf("validate within the policy: %s", r)
		}

		// GET run shows each job's container.
		id := e.startRun("boxed", alice.Token)
		var got struct {
			Stages []struct {
				Jobs []struct {
					Name      string         `json:"name"`
					Container *run.Container `json:"container"`
				} `json:"jobs"`
			} `json:"stages"`
		}
		e.call("GET", "/api/v1/runs/"+strconv.FormatInt(id, 10), alice.Token, nil).json(t, &got)
		want := []*run.Container{
			{Image: "golang:1.26"},
			{Image: "alpine:3", User: "1000", CPUs: 2, Memory: 2 << 30, Pull: run.PullNever, Services: []run.Service{{Name: "postgres", Image: "postgres:16"}}},
		}
		for i, j := range got.Stages[0].Jobs {
			if !reflect.DeepEqual(j.Container, want[i]) {
				t.Errorf("run job %s: container = %+v, want %+v", j.Name, j.Container, want[i])
			}
		}
	})
}

// TestZeroPolicyAllowsHostJobs: a server without a Policy saves jobs without an image, and
// shows no container for them.
func TestZeroPolicyAllowsHostJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	alice := e.user("alice", false)
	if r := e.yaml("POST", "/api/v1/pipelines", alice.Token, testDefinition("hello")); r.Status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	id := e.startRun("hello", alice.Token)
	if r := e.call("GET", "/api/v1/runs/"+strconv.FormatInt(id, 10), alice.Token, nil); strings.Contains(string(r.Body), `"container"`) || strings.Contains(string(r.Body), `"image"`) {
		t.Errorf("a host job shows a container: %s", r)
	}
}
