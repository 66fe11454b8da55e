package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

// testMetricsToken may read /metrics in every test server.
const testMetricsToken = "test-metrics-token-5c2e"

// secretValue is the secret default of testDefinition; it must never leave the server in clear.
const secretValue = "sup3r-s3cret-value-7d1f"

// testDefinition is a pipeline with a plain, an option and a secret variable.
func testDefinition(name string) string {
	return `name: ` + name + `
description: Say hello
variables:
  abc: "123"
  TARGET:
    default: staging
    options: [staging, production]
  API_KEY:
    secret: true
    default: "` + secretValue + `"
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - name: echo
            run: echo "abc=$abc"
`
}

// forEachDialect runs fn against a SQLite store and, when configured, a PostgreSQL one.
func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// env is one API server over a real store, reached through real HTTP.
type env struct {
	t        testing.TB
	st       *store.Store
	box      *secret.Box
	server   *api.Server
	srv      *httptest.Server
	canceler *fakeCanceler
	notify   *notifier
}

// newEnv starts a server on a new store of dialect; configure may change the Server before it
// starts.
func newEnv(t *testing.T, dialect string, configure ...func(*api.Server)) *env {
	t.Helper()
	return newEnvWithStore(t, storetest.Open(t, dialect), configure...)
}

// newEnvWithStore starts a server on st. tb may be a *testing.F: a fuzz target's server, set
// up before f.Fuzz and used through e.with(t) in each run.
func newEnvWithStore(tb testing.TB, st *store.Store, configure ...func(*api.Server)) *env {
	tb.Helper()
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{t: tb, st: st, box: box, canceler: &fakeCanceler{}, notify: newNotifier()}
	m := metrics.New()
	if err := m.WatchStore(st); err != nil {
		tb.Fatal(err)
	}
	e.server = &api.Server{
		Store:        st,
		Triggers:     &trigger.Service{Store: st, Box: box},
		Box:          box,
		LogChanged:   e.notify.changed,
		Canceler:     e.canceler,
		Metrics:      m,
		ExternalURL:  "https://ci.example.com",
		MaxBody:      64 << 10,
		Logger:       storetest.Logger(tb),
		PasswordCost: 4,
		MetricsToken: testMetricsToken,
	}
	for _, c := range configure {
		c(e.server)
	}
	e.srv = httptest.NewServer(e.server.Handler())
	tb.Cleanup(e.srv.Close)
	return e
}

// user creates a user (password "password-<name>") with an API token and returns it.
func (e *env) user(name string, admin bool) testUser {
	e.t.Helper()
	ctx := context.Background()
	pw := "password-" + name
	hash, err := auth.HashPasswordCost(pw, 4)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.st.UserCreate(ctx, name, hash, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	token, th, err := auth.NewToken()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.TokenCreate(ctx, u.ID, "test", th); err != nil {
		e.t.Fatal(err)
	}
	return testUser{User: u, Password: pw, Token: token}
}

type testUser struct {
	store.User
	Password string
	Token    string
}

// response is an answer, read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.Status, strings.TrimSpace(string(r.Body)))
}

// json decodes the body into v, failing the test when it cannot.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %s is not JSON: %v", r, err)
	}
}

// errorCode returns the error code of an error answer.
func (r response) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// request is one call to make.
type request struct {
	method, path string
	token        string // Bearer token; "" = none
	basic        *[2]string
	contentType  string
	body         io.Reader
	headOnly     bool // read the status and headers, not the body (a stream that stays open)
}

func (e *env) do(rq request) response {
	e.t.Helper()
	req, err := http.NewRequest(rq.method, e.srv.URL+rq.path, rq.body)
	if err != nil {
		e.t.Fatal(err)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.basic != nil {
		req.SetBasicAuth(rq.basic[0], rq.basic[1])
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if rq.headOnly {
		return response{Status: resp.StatusCode, Header: resp.Header}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// call sends a JSON body (nil: none) with a bearer token.
func (e *env) call(method, path, token string, body any) response {
	e.t.Helper()
	rq := request{method: method, path: path, token: token}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rq.body, rq.contentType = bytes.NewReader(b), "application/json"
	}
	return e.do(rq)
}

// yaml sends a YAML body.
func (e *env) yaml(method, path, token, src string) response {
	e.t.Helper()
	return e.do(request{method: method, path: path, token: token, contentType: "application/yaml", body: strings.NewReader(src)})
}

// createPipeline creates testDefinition(name) as owner through the API and gives the listed
// users their roles.
func (e *env) createPipeline(name string, owner testUser, roles map[*testUser]auth.Role) store.Pipeline {
	e.t.Helper()
	if r := e.yaml("POST", "/api/v1/pipelines", owner.Token, testDefinition(name)); r.Status != http.StatusCreated {
		e.t.Fatalf("create pipeline %s: %s", name, r)
	}
	p, err := e.st.PipelineGet(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	for u, role := range roles {
		if err := e.st.MemberSet(context.Background(), p.ID, u.ID, string(role)); err != nil {
			e.t.Fatal(err)
		}
	}
	return p
}

// startRun starts a run through the API and returns its id.
func (e *env) startRun(pipeline, token string) int64 {
	e.t.Helper()
	r := e.call("POST", "/api/v1/pipelines/"+pipeline+"/runs", token, nil)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("start run of %s: %s", pipeline, r)
	}
	var out struct {
		Run struct {
			ID int64 `json:"id"`
		} `json:"run"`
	}
	r.json(e.t, &out)
	return out.Run.ID
}

// fakeCanceler records the runs it was asked to cancel and runs onCancel for each.
type fakeCanceler struct {
	mu       sync.Mutex
	ids      []int64
	onCancel func(id int64)
}

func (c *fakeCanceler) Cancel(id int64) {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	f := c.onCancel
	c.mu.Unlock()
	if f != nil {
		f(id)
	}
}

func (c *fakeCanceler) canceled() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.ids...)
}

// notifier wakes log followers when a test changes a run.
type notifier struct {
	mu sync.Mutex
	ch map[int64]chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: map[int64]chan struct{}{}} }

func (n *notifier) changed(id int64) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.ch[id]
	if !ok {
		c = make(chan struct{})
		n.ch[id] = c
	}
	return c
}

func (n *notifier) wake(id int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.ch[id]; ok {
		close(c)
		delete(n.ch, id)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func newServer(t *testing.T, s *api.Server) *httptest.Server {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}
