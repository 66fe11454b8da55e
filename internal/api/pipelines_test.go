package api_test

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

type pipelineAnswer struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Revision    int64  `json:"revision"`
	YAML        string `json:"yaml"`
	Variables   []struct {
		Name    string   `json:"name"`
		Default *string  `json:"default"`
		Secret  bool     `json:"secret"`
		Options []string `json:"options"`
	} `json:"variables"`
	Stages []struct {
		Name string `json:"name"`
		Jobs []struct {
			Name  string   `json:"name"`
			Steps []string `json:"steps"`
		} `json:"jobs"`
	} `json:"stages"`
	CreatedBy string `json:"created_by"`
	Role      string `json:"role"`
}

type problem struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Key     string `json:"key"`
	Message string `json:"message"`
}

type errorAnswer struct {
	Error struct {
		Code     string    `json:"code"`
		Message  string    `json:"message"`
		Problems []problem `json:"problems"`
	} `json:"error"`
}

func TestPipelineCreate(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)

		r := e.yaml("POST", "/api/v1/pipelines", alice.Token, testDefinition("hello"))
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		if loc := r.Header.Get("Location"); loc != "/api/v1/pipelines/hello" {
			t.Errorf("Location = %q", loc)
		}
		var p pipelineAnswer
		r.json(t, &p)
		if p.Name != "hello" || p.Description != "Say hello" || p.Revision != 1 || p.Role != "admin" || p.CreatedBy != "alice" {
			t.Errorf("created pipeline = %+v", p)
		}
		if len(p.Stages) != 1 || p.Stages[0].Name != "build" || !reflect.DeepEqual(p.Stages[0].Jobs[0].Steps, []string{"echo"}) {
			t.Errorf("stages = %+v", p.Stages)
		}
		if len(p.Variables) != 3 || *p.Variables[0].Default != "123" || !reflect.DeepEqual(p.Variables[1].Options, []string{"staging", "production"}) {
			t.Errorf("variables = %+v", p.Variables)
		}
		if v := p.Variables[2]; v.Name != "API_KEY" || !v.Secret || v.Default != nil {
			t.Errorf("secret variable = %+v, want no default", v)
		}

		if r := e.yaml("POST", "/api/v1/pipelines", alice.Token, testDefinition("hello")); r.Status != http.StatusConflict || r.errorCode() != "conflict" {
			t.Errorf("duplicate: %s, want 409 conflict", r)
		}
		if r := e.do(request{method: "POST", path: "/api/v1/pipelines", token: alice.Token, contentType: "application/json",
			body: strings.NewReader(`{"name":"x"}`)}); r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("JSON body: %s, want 415", r)
		}
	})
}

func TestPipelineInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	alice := e.user("alice", false)
	src := `name: Bad_Name
variables:
  abc: "1"
stages:
  - name: build
    jobs:
      - name: say
        timeoutt: 5m
        steps:
          - run: echo hi
  - name: test
    jobs:
      - name: check
        steps: []
`
	r := e.yaml("POST", "/api/v1/pipelines", alice.Token, src)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid definition: %s, want 422", r)
	}
	var ans errorAnswer
	r.json(t, &ans)
	if ans.Error.Code != "invalid_pipeline" {
		t.Errorf("code = %q", ans.Error.Code)
	}
	type pos struct{ line, col int }
	var got []pos
	for _, p := range ans.Error.Problems {
		got = append(got, pos{p.Line, p.Column})
		if p.Message == "" {
			t.Errorf("problem at %d:%d has no message", p.Line, p.Column)
		}
	}
	want := []pos{{1, 7}, {8, 9}, {14, 16}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems at %v, want %v: %s", got, want, r)
	}
	if !strings.Contains(ans.Error.Problems[1].Message, "timeoutt") {
		t.Errorf("problem 2 = %q, want it to name the key", ans.Error.Problems[1].Message)
	}

	// Broken YAML is a 422 too, never a 500.
	for _, bad := range []string{"", "name: x\nstages: [\n", "- a\n- b\n", "\x00\xff"} {
		if r := e.yaml("POST", "/api/v1/pipelines", alice.Token, bad); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("definition %q: %s, want 422", bad, r)
		}
	}
}

func TestPipelineUpdate(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		ctx := context.Background()

		// A new revision that keeps the secret by writing ***.
		src := strings.Replace(testDefinition("hello"), secretValue, "***", 1)
		src = strings.Replace(src, "Say hello", "Say hello again", 1)
		r := e.yaml("PUT", "/api/v1/pipelines/hello", alice.Token, src)
		if r.Status != http.StatusOK {
			t.Fatalf("update: %s", r)
		}
		var p pipelineAnswer
		r.json(t, &p)
		if p.Revision != 2 || p.Description != "Say hello again" {
			t.Errorf("updated = revision %d, description %q", p.Revision, p.Description)
		}
		if got := storedSecrets(t, e, "hello"); got["API_KEY"] != secretValue {
			t.Errorf("after *** the stored secret is %q, want it kept", got["API_KEY"])
		}

		// A new secret value replaces it.
		src = strings.Replace(testDefinition("hello"), secretValue, "new-secret-value", 1)
		if r := e.yaml("PUT", "/api/v1/pipelines/hello", alice.Token, src); r.Status != http.StatusOK {
			t.Fatalf("update: %s", r)
		}
		if got := storedSecrets(t, e, "hello"); got["API_KEY"] != "new-secret-value" {
			t.Errorf("stored secret = %q, want the new value", got["API_KEY"])
		}
		old, err := e.st.PipelineRevision(ctx, mustPipeline(t, e, "hello").ID, 1)
		if err != nil || !strings.Contains(old.Source, "Say hello") {
			t.Errorf("revision 1 = %+v, %v", old, err)
		}

		// The name in the body must be the one in the path.
		r = e.yaml("PUT", "/api/v1/pipelines/hello", alice.Token, testDefinition("other"))
		var ans errorAnswer
		r.json(t, &ans)
		if r.Status != http.StatusUnprocessableEntity || ans.Error.Code != "invalid_pipeline" ||
			len(ans.Error.Problems) != 1 || ans.Error.Problems[0].Line != 1 || ans.Error.Problems[0].Column != 7 {
			t.Errorf("renaming PUT: %s, want 422 with the problem at 1:7", r)
		}
		if r := e.yaml("PUT", "/api/v1/pipelines/hello", alice.Token, "stages: 3"); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("invalid PUT: %s", r)
		}
		if p := mustPipeline(t, e, "hello"); p.Revision != 3 {
			t.Errorf("rejected PUTs changed the revision to %d", p.Revision)
		}

		// Delete, then it is gone.
		if r := e.call("DELETE", "/api/v1/pipelines/hello", alice.Token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %s", r)
		}
		if r := e.call("GET", "/api/v1/pipelines/hello", alice.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("after delete: %s", r)
		}
	})
}

func mustPipeline(t *testing.T, e *env, name string) store.Pipeline {
	t.Helper()
	p, err := e.st.PipelineGet(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func storedSecrets(t *testing.T, e *env, name string) map[string]string {
	t.Helper()
	m, err := trigger.OpenSecrets(e.box, mustPipeline(t, e, name).Secrets)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSecretNeverLeaves checks that a secret default never comes back through the API (pipeline
// JSON, its yaml, runs) and is stored only encrypted.
func TestSecretNeverLeaves(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		dsn := storetest.DSN(t, dialect)
		st, err := store.Open(context.Background(), dsn, storetest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		e := newEnvWithStore(t, st)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)

		var answers []response
		answers = append(answers, e.call("GET", "/api/v1/pipelines/hello", alice.Token, nil))
		answers = append(answers, e.call("GET", "/api/v1/pipelines", alice.Token, nil))
		r := e.call("POST", "/api/v1/pipelines/hello/runs", alice.Token, map[string]any{"variables": map[string]any{"abc": "plain-marker-42"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("start run: %s", r)
		}
		answers = append(answers, r)
		var started struct {
			Run struct {
				ID        int64             `json:"id"`
				Variables map[string]string `json:"variables"`
			} `json:"run"`
		}
		r.json(t, &started)
		if _, ok := started.Run.Variables["API_KEY"]; ok {
			t.Errorf("the run's variables hold the secret variable: %v", started.Run.Variables)
		}
		answers = append(answers, e.call("GET", "/api/v1/runs/"+itoa(started.Run.ID), alice.Token, nil))
		answers = append(answers, e.call("GET", "/api/v1/pipelines/hello/runs", alice.Token, nil))
		for _, a := range answers {
			if a.Status >= 300 {
				t.Errorf("answer %s", a)
			}
			if strings.Contains(string(a.Body), secretValue) {
				t.Errorf("an answer shows the secret: %s", a)
			}
		}
		var p pipelineAnswer
		answers[0].json(t, &p)
		if !strings.Contains(p.YAML, `"***"`) || !strings.Contains(p.YAML, "API_KEY") {
			t.Errorf("yaml does not mask the secret as ***:\n%s", p.YAML)
		}
		// The run still got the secret, sealed.
		rn, err := st.RunGet(context.Background(), started.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sv, err := trigger.OpenSecrets(e.box, rn.SecretVariables); err != nil || sv["API_KEY"] != secretValue {
			t.Errorf("the run's sealed secrets = %v, %v", sv, err)
		}

		// The database holds it only encrypted.
		raw := rawColumns(t, dialect, dsn)
		if !strings.Contains(raw, "plain-marker-42") {
			t.Fatalf("the raw read does not see the run's plain variable; the check below would prove nothing")
		}
		if strings.Contains(raw, secretValue) {
			t.Errorf("the database holds the secret in clear")
		}
		if dialect == "sqlite" {
			path := strings.TrimPrefix(dsn, "sqlite:")
			var files []byte
			for _, f := range []string{path, path + "-wal"} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				files = append(files, b...)
			}
			if !strings.Contains(string(files), "plain-marker-42") {
				t.Fatalf("the database files do not hold the plain marker; the check would prove nothing")
			}
			if strings.Contains(string(files), secretValue) {
				t.Errorf("the SQLite files hold the secret in clear")
			}
		}
	})
}

// rawColumns reads, bypassing the store, every column that could hold a variable's value.
func rawColumns(t *testing.T, dialect, dsn string) string {
	t.Helper()
	driver, source := "pgx", dsn
	if dialect == "sqlite" {
		driver, source = "sqlite", strings.TrimPrefix(dsn, "sqlite:")
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		"SELECT source, COALESCE(secrets, '') FROM pipeline_revisions",
		"SELECT variables, COALESCE(secret_variables, '') FROM runs",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var a, c []byte
			if err := rows.Scan(&a, &c); err != nil {
				t.Fatal(err)
			}
			b.Write(a)
			b.Write(c)
		}
		rows.Close()
	}
	return b.String()
}
