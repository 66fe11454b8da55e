package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// with returns the env acting for t (a subtest), so failures end the right test.
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// triggerOut is a webhook trigger as the API answers it.
type triggerOut struct {
	Enabled   bool    `json:"enabled"`
	URL       *string `json:"url"`
	EnabledBy *string `json:"enabled_by"`
	EnabledAt *string `json:"enabled_at"`
	HasSecret bool    `json:"has_secret"`
	// RequireTimestamp is set when signed requests must carry X-Flowd-Timestamp.
	RequireTimestamp bool    `json:"require_timestamp"`
	OwnerCanRun      bool    `json:"owner_can_run"`
	OwnerProblem     *string `json:"owner_problem"`
}

// token is the token of the trigger's URL ("" when the answer has none).
func (t triggerOut) token() string {
	if t.URL == nil {
		return ""
	}
	return (*t.URL)[strings.LastIndex(*t.URL, "/")+1:]
}

// enable enables the webhook of pipeline as u (body: nil = none) and returns the trigger.
func (e *env) enable(pipeline string, u testUser, body any) triggerOut {
	e.t.Helper()
	r := e.call("POST", "/api/v1/pipelines/"+pipeline+"/triggers/webhook/enable", u.Token, body)
	if r.Status != http.StatusOK {
		e.t.Fatalf("enable webhook of %s as %s: %s", pipeline, u.Username, r)
	}
	var out triggerOut
	r.json(e.t, &out)
	if out.token() == "" || !strings.HasPrefix(*out.URL, "https://ci.example.com/pipeline/webhook/") {
		e.t.Fatalf("enable answered no URL: %s", r)
	}
	return out
}

// hook sends body to the webhook URL of token; headers are name, value pairs.
func (e *env) hook(token, contentType, body string, headers ...string) response {
	e.t.Helper()
	return e.hookPath("/pipeline/webhook/"+token, contentType, body, headers...)
}

func (e *env) hookPath(path, contentType, body string, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// hookAnswer is a webhook answer.
type hookAnswer struct {
	Run *struct {
		ID     int64  `json:"id"`
		Number int64  `json:"number"`
		URL    string `json:"url"`
		APIURL string `json:"api_url"`
		Status string `json:"status"`
	} `json:"run"`
	Ignored    []string          `json:"ignored"`
	Skipped    *string           `json:"skipped"`
	Delivery   int64             `json:"delivery"`
	Replayed   bool              `json:"replayed"`
	DryRun     bool              `json:"dry_run"`
	WouldStart bool              `json:"would_start"`
	Variables  map[string]string `json:"variables"`
	Trace      []traceStep       `json:"trace"`
	Error      *struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Problems []struct {
			Key     string `json:"key"`
			Message string `json:"message"`
		} `json:"problems"`
	} `json:"error"`
}

type traceStep struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (r response) answer(t testing.TB) hookAnswer {
	t.Helper()
	var a hookAnswer
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("webhook answer %s is not JSON: %v", r, err)
	}
	return a
}

// lastStep is the last step of a trace ("" when empty) and whether it passed.
func lastStep(tr []traceStep) (string, bool) {
	if len(tr) == 0 {
		return "", false
	}
	s := tr[len(tr)-1]
	return s.Step, s.OK
}

func steps(tr []traceStep) []string {
	out := make([]string, len(tr))
	for i, s := range tr {
		out[i] = s.Step
	}
	return out
}

// storetestDSN is the DSN of a new SQLite database of the test.
func storetestDSN(t *testing.T) string {
	return storetest.DSN(t, "sqlite")
}

// openStoreLogging opens the store at dsn with its log written to w.
func openStoreLogging(t *testing.T, dsn string, w io.Writer) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, newLogger(w))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// sqliteFiles reads the database file of a sqlite: DSN and its -wal and -shm files.
func sqliteFiles(t *testing.T, dsn string) map[string][]byte {
	t.Helper()
	path := strings.TrimPrefix(dsn, "sqlite:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	out := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		b, err := os.ReadFile(path + suffix)
		if err == nil {
			out[filepath.Base(path+suffix)] = b
		}
	}
	return out
}
