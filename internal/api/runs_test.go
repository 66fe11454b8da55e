package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

type runAnswer struct {
	ID              int64             `json:"id"`
	Number          int64             `json:"number"`
	Pipeline        string            `json:"pipeline"`
	Revision        int64             `json:"revision"`
	Status          run.Status        `json:"status"`
	Trigger         run.Trigger       `json:"trigger"`
	TriggeredBy     string            `json:"triggered_by"`
	Variables       map[string]string `json:"variables"`
	Message         string            `json:"message"`
	CancelRequested bool              `json:"cancel_requested"`
	URL             string            `json:"url"`
	APIURL          string            `json:"api_url"`
	Stages          []struct {
		Name   string     `json:"name"`
		Status run.Status `json:"status"`
		Jobs   []struct {
			ID     int64      `json:"id"`
			Name   string     `json:"name"`
			Status run.Status `json:"status"`
			Steps  []struct {
				Name   string     `json:"name"`
				Status run.Status `json:"status"`
			} `json:"steps"`
		} `json:"jobs"`
	} `json:"stages"`
}

func TestRunCreate(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		dev := e.user("dev", false)
		owner := e.user("owner", false)
		e.createPipeline("hello", owner, map[*testUser]auth.Role{&dev: auth.Developer})

		r := e.call("POST", "/api/v1/pipelines/hello/runs", dev.Token, map[string]any{
			"variables": map[string]any{"abc": 456, "TARGET": "production", "unknown": "x"},
		})
		if r.Status != http.StatusCreated {
			t.Fatalf("start: %s", r)
		}
		var ans struct {
			Run     runAnswer `json:"run"`
			Ignored []string  `json:"ignored"`
		}
		r.json(t, &ans)
		rn := ans.Run
		if rn.Number != 1 || rn.Pipeline != "hello" || rn.Status != run.Queued || rn.Trigger != run.TriggerManual || rn.TriggeredBy != "dev" || rn.Revision != 1 {
			t.Errorf("run = %+v", rn)
		}
		if want := map[string]string{"abc": "456", "TARGET": "production"}; !reflect.DeepEqual(rn.Variables, want) {
			t.Errorf("variables = %v, want %v", rn.Variables, want)
		}
		if !reflect.DeepEqual(ans.Ignored, []string{"unknown"}) {
			t.Errorf("ignored = %v", ans.Ignored)
		}
		// url is the page a person opens; api_url the run in the API.
		if want := fmt.Sprintf("https://ci.example.com/runs/%d", rn.ID); rn.URL != want {
			t.Errorf("url = %q, want %q", rn.URL, want)
		}
		if want := fmt.Sprintf("https://ci.example.com/api/v1/runs/%d", rn.ID); rn.APIURL != want {
			t.Errorf("api_url = %q, want %q", rn.APIURL, want)
		}
		var got runAnswer
		if r := e.call("GET", "/api/v1/runs/"+itoa(rn.ID), dev.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("get: %s", r)
		} else if r.json(t, &got); got.URL != rn.URL || got.APIURL != rn.APIURL {
			t.Errorf("GET run: url %q api_url %q, want those of the start", got.URL, got.APIURL)
		}
		if len(rn.Stages) != 1 || rn.Stages[0].Name != "build" || len(rn.Stages[0].Jobs) != 1 || rn.Stages[0].Jobs[0].Steps[0].Name != "echo" {
			t.Errorf("stages = %+v", rn.Stages)
		}

		// No body at all: the defaults.
		r = e.do(request{method: "POST", path: "/api/v1/pipelines/hello/runs", token: dev.Token})
		r.json(t, &ans)
		if r.Status != http.StatusCreated || ans.Run.Number != 2 || ans.Run.Variables["abc"] != "123" || ans.Ignored == nil {
			t.Errorf("start without a body: %s", r)
		}

		// Bad variables: 422 naming each key, and no run.
		r = e.call("POST", "/api/v1/pipelines/hello/runs", dev.Token, map[string]any{
			"variables": map[string]any{"TARGET": "moon", "abc": []int{1}, "PATH": "/x"},
		})
		var bad errorAnswer
		r.json(t, &bad)
		var keys []string
		for _, p := range bad.Error.Problems {
			keys = append(keys, p.Key)
		}
		if r.Status != http.StatusUnprocessableEntity || bad.Error.Code != "invalid_variables" || !reflect.DeepEqual(keys, []string{"PATH", "TARGET", "abc"}) {
			t.Errorf("bad variables: %s", r)
		}
		for _, k := range keys {
			if !strings.Contains(bad.Error.Message, k) {
				t.Errorf("message %q does not name %s", bad.Error.Message, k)
			}
		}

		// Malformed JSON, wrong shapes and media types.
		for _, c := range []struct {
			body, ctype string
			status      int
			code        string
		}{
			{`{"variables":`, "application/json", 400, "invalid_json"},
			{`{"variables":{"abc":"1"}} {}`, "application/json", 400, "invalid_json"},
			{`{"vars":{"abc":"1"}}`, "application/json", 400, "invalid_json"},
			{`{"variables":["abc"]}`, "application/json", 400, "invalid_json"},
			{`[]`, "application/json", 400, "invalid_json"},
			{`abc=1`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		} {
			r := e.do(request{method: "POST", path: "/api/v1/pipelines/hello/runs", token: dev.Token, contentType: c.ctype, body: strings.NewReader(c.body)})
			if r.Status != c.status || r.errorCode() != c.code {
				t.Errorf("body %q: %s, want %d %s", c.body, r, c.status, c.code)
			}
		}

		// Over the body limit: with a Content-Length, and streamed without one.
		big := `{"variables":{"abc":"` + strings.Repeat("x", 70<<10) + `"}}`
		r = e.do(request{method: "POST", path: "/api/v1/pipelines/hello/runs", token: dev.Token, contentType: "application/json", body: strings.NewReader(big)})
		if r.Status != http.StatusRequestEntityTooLarge || r.errorCode() != "payload_too_large" {
			t.Errorf("oversized body: %s", r)
		}
		r = e.do(request{method: "POST", path: "/api/v1/pipelines/hello/runs", token: dev.Token, contentType: "application/json",
			body: io.MultiReader(strings.NewReader(big))})
		if r.Status != http.StatusRequestEntityTooLarge || r.errorCode() != "payload_too_large" {
			t.Errorf("oversized streamed body: %s", r)
		}

		runs, err := e.st.RunList(context.Background(), mustPipeline(t, e, "hello").ID, storeParams(0, 0))
		if err != nil || len(runs) != 2 {
			t.Errorf("%d runs stored (%v), want the 2 good ones", len(runs), err)
		}
	})
}

func TestRunListPagination(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		for range 5 {
			e.startRun("hello", alice.Token)
		}
		type page struct {
			Runs []struct {
				Number int64           `json:"number"`
				ID     int64           `json:"id"`
				URL    string          `json:"url"`
				APIURL string          `json:"api_url"`
				Stages json.RawMessage `json:"stages"`
			} `json:"runs"`
			NextBefore *int64 `json:"next_before"`
		}
		var numbers []int64
		path := "/api/v1/pipelines/hello/runs?limit=2"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			r := e.call("GET", path, alice.Token, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("list: %s", r)
			}
			var p page
			r.json(t, &p)
			for _, rn := range p.Runs {
				numbers = append(numbers, rn.Number)
				if rn.Stages != nil {
					t.Errorf("a run summary has stages: %s", rn.Stages)
				}
				if rn.URL != "https://ci.example.com/runs/"+itoa(rn.ID) || rn.APIURL != "https://ci.example.com/api/v1/runs/"+itoa(rn.ID) {
					t.Errorf("a run summary has url %q, api_url %q", rn.URL, rn.APIURL)
				}
			}
			if p.NextBefore == nil {
				break
			}
			path = fmt.Sprintf("/api/v1/pipelines/hello/runs?limit=2&before=%d", *p.NextBefore)
		}
		if want := []int64{5, 4, 3, 2, 1}; !reflect.DeepEqual(numbers, want) {
			t.Errorf("pages gave runs %v, want %v", numbers, want)
		}

		// Filters.
		id := e.startRun("hello", alice.Token)
		if r := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), alice.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("cancel: %s", r)
		}
		var p page
		e.call("GET", "/api/v1/pipelines/hello/runs?status=canceled&trigger=manual", alice.Token, nil).json(t, &p)
		if len(p.Runs) != 1 || p.Runs[0].Number != 6 || p.NextBefore != nil {
			t.Errorf("status filter: %+v", p)
		}
		for _, q := range []string{"limit=0", "limit=x", "limit=201", "before=-1", "status=bogus", "trigger=nightly"} {
			if r := e.call("GET", "/api/v1/pipelines/hello/runs?"+q, alice.Token, nil); r.Status != http.StatusBadRequest || r.errorCode() != "bad_request" {
				t.Errorf("?%s: %s, want 400 bad_request", q, r)
			}
		}
	})
}

func TestRunGetAndCancel(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		ctx := context.Background()

		for _, id := range []string{"999999", "abc", "-1", "0"} {
			if r := e.call("GET", "/api/v1/runs/"+id, alice.Token, nil); r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
				t.Errorf("GET run %s: %s, want 404", id, r)
			}
		}

		// A queued run is canceled at once.
		id := e.startRun("hello", alice.Token)
		r := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), alice.Token, nil)
		var rn runAnswer
		r.json(t, &rn)
		if r.Status != http.StatusOK || rn.Status != run.Canceled || rn.Message != "canceled by alice" {
			t.Errorf("cancel queued: %s", r)
		}
		if r := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), alice.Token, nil); r.Status != http.StatusConflict {
			t.Errorf("cancel a canceled run: %s, want 409", r)
		}

		// A finished run cannot be canceled.
		id = e.startRun("hello", alice.Token)
		finishAll(t, e, id, run.Success)
		if r := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), alice.Token, nil); r.Status != http.StatusConflict || r.errorCode() != "conflict" {
			t.Errorf("cancel finished: %s, want 409", r)
		}

		// A running run: the scheduler is told, and the answer comes at once, the run canceling;
		// its attempt is canceling, for the runner on whichever node holds it.
		id = e.startRun("hello", alice.Token)
		c, err := e.st.JobClaim(ctx)
		if err != nil || c.Run.ID != id {
			t.Fatalf("claim: %+v, %v", c, err)
		}
		r = e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), alice.Token, nil)
		r.json(t, &rn)
		if r.Status != http.StatusAccepted || rn.Status != run.Canceling {
			t.Errorf("cancel running: %s; want 202 canceling", r)
		}
		if live, err := e.st.AttemptStates(ctx, []int64{c.Attempt.ID}); err != nil || len(live) != 1 || live[0].State != run.AttemptCanceling {
			t.Errorf("attempt after cancel = %+v, %v; want canceling", live, err)
		}
		if got := e.canceler.canceled(); !reflect.DeepEqual(got, []int64{id}) {
			t.Errorf("the scheduler was asked to cancel %v, want [%d]", got, id)
		}
	})
}

// finishAll claims every job of run id and finishes it with status, as the scheduler would.
func finishAll(t *testing.T, e *env, id int64, status run.Status) {
	t.Helper()
	ctx := context.Background()
	for {
		st, err := e.st.RunStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Terminal() {
			e.notify.wake(id)
			return
		}
		c, err := e.st.JobClaim(ctx)
		if err != nil {
			t.Fatalf("claim a job of run %d: %v", id, err)
		}
		if c.Run.ID != id {
			t.Fatalf("claimed a job of run %d, want %d", c.Run.ID, id)
		}
		if _, err := e.st.JobFinish(ctx, c.Attempt.ID, c.Job.ID, status, ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunLog(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		ctx := context.Background()
		id := e.startRun("hello", alice.Token)
		appendLog := func(text string) {
			t.Helper()
			if err := e.st.LogAppend(ctx, []run.LogChunk{{RunID: id, Data: []byte(text)}}); err != nil {
				t.Fatal(err)
			}
			e.notify.wake(id)
		}
		appendLog("line one\n")
		appendLog("line two\n")

		r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d/log", id), alice.Token, nil)
		if r.Status != http.StatusOK || string(r.Body) != "line one\nline two\n" {
			t.Fatalf("log: %s", r)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers: %v", r.Header)
		}
		if r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d/log?follow=maybe", id), alice.Token, nil); r.Status != http.StatusBadRequest {
			t.Errorf("follow=maybe: %s", r)
		}

		// Follow: lines arrive while the run goes on, and the answer ends when it finished.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/runs/%d/log?follow=1", e.srv.URL, id), nil)
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		readLine := func(want string) {
			t.Helper()
			line, err := br.ReadString('\n')
			if err != nil || line != want {
				t.Fatalf("followed line = %q, %v; want %q", line, err, want)
			}
		}
		readLine("line one\n")
		readLine("line two\n")
		appendLog("line three\n") // written while the follower waits
		readLine("line three\n")
		finishAll(t, e, id, run.Success)
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("follow did not end cleanly: %v", err)
		}
		if len(rest) != 0 {
			t.Errorf("after the end: %q", rest)
		}
	})
}

func storeParams(limit int, before int64) store.RunListParams {
	return store.RunListParams{Limit: limit, Before: before}
}

// TestRunCreateVariablesHint: variables given at the top level of a manual run's body, as the
// webhook takes them, are refused with the body to send instead; other unknown fields are not
// mistaken for variables.
func TestRunCreateVariablesHint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	dev := e.user("dev", false)
	e.createPipeline("hello", dev, nil)
	const hint = `variables of a manual run go under "variables": send `
	for _, c := range []struct {
		body string
		want string // the hint's body, "" = no hint
	}{
		{`{"abc":"456"}`, `{"variables":{"abc":"456"}}`},
		{`{"abc":456,"TARGET":"production"}`, `{"variables":{"TARGET":"production","abc":456}}`},
		{`{"variables":{"abc":"1"},"flag":true}`, `{"variables":{"flag":true}}`},
		{`{"branch":"main","abc":"1"}`, `{"variables":{"abc":"1"}}`},
		{`{"vars":{"abc":"1"}}`, ""},         // an object: a misspelt field, not a variable
		{`{"abc":"1","no-var":"2"}`, ""},     // not a variable name
		{`{"abc":"1","FLOWD_X":"2"}`, ""},    // reserved: no variable can have it
		{`{"abc":null}`, ""},                 // null is no variable value
		{`{"abc":["1"]}`, ""},                // nor an array
		{`{"variables":{"abc":"1"}} {}`, ""}, // two values: another problem
	} {
		r := e.do(request{method: "POST", path: "/api/v1/pipelines/hello/runs", token: dev.Token, contentType: "application/json", body: strings.NewReader(c.body)})
		var ans errorAnswer
		r.json(t, &ans)
		if r.Status != http.StatusBadRequest || ans.Error.Code != "invalid_json" {
			t.Errorf("body %s: %s, want 400 invalid_json", c.body, r)
			continue
		}
		_, got, found := strings.Cut(ans.Error.Message, hint)
		switch {
		case c.want == "" && found:
			t.Errorf("body %s: message %q has a variables hint", c.body, ans.Error.Message)
		case c.want != "" && got != c.want:
			t.Errorf("body %s: message %q, want it to end with %s%s", c.body, ans.Error.Message, hint, c.want)
		}
		if c.want != "" && !strings.Contains(ans.Error.Message, "unknown field") {
			t.Errorf("body %s: message %q does not name the unknown field", c.body, ans.Error.Message)
		}
	}
	// The hinted body works.
	r := e.call("POST", "/api/v1/pipelines/hello/runs", dev.Token, map[string]any{"variables": map[string]any{"abc": "456"}})
	if r.Status != http.StatusCreated {
		t.Errorf("the hinted body: %s", r)
	}
}
