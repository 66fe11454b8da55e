package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestUIRunNotifications: the run page lists the run's notifications: one delivered after a
// 500 (two attempts, both listed), one to a receiver that is down, pending with its error.
func TestUIRunNotifications(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			var posts atomic.Int32
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if posts.Add(1) == 1 {
					http.Error(w, "not yet", http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(up.Close)
			down := closedAddr(t)
			data, dsn := newDatabase(t, dialect)
			s := startServerEnv(t, data, dsn, []string{"FLOWD_TEST_NOTIFY_BACKOFF=200ms"})
			requireUI(t, s)
			tok := s.token("admin", adminPassword)
			s.createPipeline(tok, `name: told
variables:
  HOOK_KEY: {secret: true, default: "ui-key"}
notify:
  - url: `+up.URL+`/hooks/flowd
    secret: HOOK_KEY
  - url: http://`+down+`/down
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: echo hi
`)
			id := s.startRun(tok, "told")
			waitFor(t, "the delivery after a 500", func() bool {
				n := s.notifications(tok, id)
				return len(n) == 2 && n[0].Status == "delivered" && n[1].Attempts >= 1
			})
			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.open("/runs/" + strconv.FormatInt(id, 10))
			b.waitJS("the notifications list", `!document.querySelector('#run-notify').hidden && document.querySelectorAll('#run-notify-list > li').length === 2 &&
				document.querySelectorAll('#run-notify-list .notify-attempts').length === 2`)
			text := b.str(`document.querySelector('#run-notify').textContent`)
			if !containsAll(text, "Notifications", "delivered", up.URL+"/hooks/flowd", "2 attempts · signed", "pending", "http://"+down+"/down", "refused") {
				t.Errorf("notifications list: %q", text)
			}
			b.click(`#run-notify-list > li:first-child summary`)
			b.waitJS("the attempts open", `document.querySelector('#run-notify-list > li:first-child details').open`)
			attempts := b.str(`document.querySelector('#run-notify-list > li:first-child ol').innerText`)
			if !containsAll(attempts, "HTTP 500", "HTTP 204") {
				t.Errorf("attempts of the delivered notification: %q", attempts)
			}
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" && dialect == "sqlite" {
				b.screenshot(dir, "run-notifications-laptop", 1280, 800)
				b.screenshot(dir, "run-notifications-phone", 390, 844)
			}
			if strings.Contains(b.str(`document.body.innerText`), "ui-key") {
				t.Error("the run page shows the signing secret")
			}
		})
	}
}
