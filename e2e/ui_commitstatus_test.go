package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/commitstatus/hosttest"
)

// TestUIRunCommitStatus: the run page shows the commit status of a run at a commit: sent, with
// where it went and each attempt; and for a pipeline whose token the host refuses, failed with
// the host's own message. The token never shows. Browser tests run on SQLite only: the page
// reads the same API on both databases (TestCommitStatusesPerHost covers PostgreSQL).
func TestUIRunCommitStatus(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	hs := hosttest.New(t)
	hs.SetToken("github", "tok-right")
	data, dsn := newDatabase(t, "sqlite")
	s := startServerEnv(t, data, dsn, []string{"FLOWD_TEST_NOTIFY_BACKOFF=200ms"})
	requireUI(t, s)
	tok := s.token("admin", adminPassword)
	pipeline := func(name, token string) string {
		return `name: ` + name + `
variables:
  STATUS_TOKEN: {secret: true, default: "` + token + `"}
source:
  url: ` + rp.Bare + `
  status_token: STATUS_TOKEN
  status_host: github
  status_api: ` + hs.API("github") + `
  status_repo: acme/app
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: echo hi
`
	}
	s.createPipeline(tok, pipeline("reported", "tok-right"))
	s.createPipeline(tok, pipeline("refused", "tok-wrong"))
	sent, refused := s.startRun(tok, "reported"), s.startRun(tok, "refused")
	waitFor(t, "both runs' final reports", func() bool {
		a, b := s.commitStatus(tok, sent), s.commitStatus(tok, refused)
		return a != nil && b != nil && a.Status == "sent" && a.SentState == "success" && b.State == "success" && b.Status == "failed"
	})
	b := newBrowser(t, s.URL)
	b.signIn("admin", adminPassword)

	b.open("/runs/" + strconv.FormatInt(sent, 10))
	b.waitJS("the commit status", `!document.querySelector('#run-cstatus').hidden && document.querySelector('#run-cstatus-status').textContent === 'sent'`)
	text := b.str(`document.querySelector('#run-cstatus').textContent`)
	if !containsAll(text, "Commit status", "sent", "reported", "success → github acme/app@"+rp.Main[:12], "attempt") || strings.Contains(text, "null") {
		t.Errorf("sent commit status: %q", text)
	}
	b.click(`#run-cstatus summary`)
	b.waitJS("the attempts open", `document.querySelector('#run-cstatus details').open`)
	if attempts := b.str(`document.querySelector('#run-cstatus ol').innerText`); !containsAll(attempts, "success: HTTP 201") {
		t.Errorf("attempts: %q", attempts)
	}
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		b.screenshot(dir, "run-commit-status-laptop", 1280, 800)
	}

	b.open("/runs/" + strconv.FormatInt(refused, 10))
	b.waitJS("the refused commit status", `!document.querySelector('#run-cstatus').hidden && document.querySelector('#run-cstatus-status').textContent === 'failed'`)
	if e := b.str(`document.querySelector('#run-cstatus-error').textContent`); e != "github answered 401: Bad credentials" {
		t.Errorf("refused commit status error: %q", e)
	}
	if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
		b.screenshot(dir, "run-commit-status-refused-phone", 390, 844)
	}
	if page := b.str(`document.body.innerText`); strings.Contains(page, "tok-wrong") || strings.Contains(page, "tok-right") {
		t.Error("the run page shows the status token")
	}

	// A run without a commit status: the card stays hidden.
	s.createPipeline(tok, "name: plain\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: echo hi\n")
	plain := s.startRun(tok, "plain")
	b.open("/runs/" + strconv.FormatInt(plain, 10))
	b.waitJS("the run page", `document.querySelector('#run-status') !== null`)
	if b.str(`String(document.querySelector("#run-cstatus").hidden)`) != "true" {
		t.Error("a run without a commit status shows the card")
	}
}
