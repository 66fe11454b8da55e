package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// notifyReceiver is a notification receiver: it verifies each POST's signature and keeps the
// runs it was told about by delivery id (a delivery sent twice counts once).
type notifyReceiver struct {
	t        *testing.T
	key      string
	mu       sync.Mutex
	runs     map[string]int64 // delivery id → run id
	statuses map[int64]string // run id → status
	bad      []string         // what was wrong with a request
}

func (rc *notifyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, sig := r.Header.Get("X-Flowd-Timestamp"), r.Header.Get("X-Flowd-Signature")
	m := hmac.New(sha256.New, []byte(rc.key))
	m.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !hmac.Equal([]byte(sig), []byte(want)) {
		rc.bad = append(rc.bad, "signature "+sig+" is not "+want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p struct {
		Event      string `json:"event"`
		DeliveryID string `json:"delivery_id"`
		Run        struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
			URL    string `json:"url"`
		} `json:"run"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Event != "run.ended" || r.Header.Get("X-Flowd-Event") != "run.ended" ||
		p.DeliveryID != r.Header.Get("X-Flowd-Delivery") || !strings.HasSuffix(p.Run.URL, "/runs/"+strconv.FormatInt(p.Run.ID, 10)) {
		rc.bad = append(rc.bad, "payload "+string(body))
	}
	if prev, seen := rc.runs[p.DeliveryID]; seen && prev != p.Run.ID {
		rc.bad = append(rc.bad, "delivery "+p.DeliveryID+" names two runs")
	}
	rc.runs[p.DeliveryID] = p.Run.ID
	rc.statuses[p.Run.ID] = p.Run.Status
	w.WriteHeader(http.StatusNoContent)
}

const notifying = `name: notifying
variables:
  EXIT: {default: "0"}
  NAP: {default: "0"}
  HOOK_KEY: {secret: true, default: "e2e-hook-key"}
notify:
  - url: http://ADDR/hooks/flowd
    on: [success, failure]
    secret: HOOK_KEY
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: sleep $NAP; exit $EXIT
`

// closedAddr is a local address nothing listens on: connections to it are refused (a receiver
// that is down) until a test listens there.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type notificationView struct {
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	DeliveryID string `json:"delivery_id"`
	LastError  string `json:"last_error"`
	History    []struct {
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
	} `json:"history"`
}

func (s *server) notifications(token string, runID int64) []notificationView {
	s.t.Helper()
	var v struct {
		Notifications []notificationView `json:"notifications"`
	}
	if code := s.api(token, "GET", "/api/v1/runs/"+strconv.FormatInt(runID, 10)+"/notifications", nil, &v); code != 200 {
		s.t.Fatalf("GET notifications of run %d: %d", runID, code)
	}
	return v.Notifications
}

// TestNotifyReceiverDownThenUp: a pipeline notifies a receiver on success and failure, signed.
// The receiver is down (a closed port) while runs succeed, fail and are canceled; flowd keeps
// trying (each attempt visible), survives a crash, and once the receiver is up it gets exactly
// the runs that succeeded or failed, once each by delivery id, every signature valid.
func TestNotifyReceiverDownThenUp(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			addr := closedAddr(t)
			env := []string{"FLOWD_TEST_NOTIFY_BACKOFF=200ms"}
			data, dsn := newDatabase(t, dialect)
			s := startServerEnv(t, data, dsn, env)
			tok := s.token("admin", adminPassword)
			s.createPipeline(tok, strings.Replace(notifying, "ADDR", addr, 1))
			start := func(vars map[string]any) int64 {
				var r struct{ Run runView }
				if code := s.api(tok, "POST", "/api/v1/pipelines/notifying/runs", map[string]any{"variables": vars}, &r); code != 201 {
					t.Fatalf("start a run: %d", code)
				}
				return r.Run.ID
			}
			ok1, failed, ok2 := start(nil), start(map[string]any{"EXIT": "3"}), start(nil)
			canceled := start(map[string]any{"NAP": "60"})
			want := map[int64]string{ok1: "success", failed: "failed", ok2: "success"}
			for id, st := range want {
				waitFor(t, "run "+strconv.FormatInt(id, 10)+" to end", func() bool { return terminal(s.run(tok, id).Status) })
				if got := s.run(tok, id).Status; got != st {
					t.Fatalf("run %d: %s, want %s", id, got, st)
				}
			}
			waitFor(t, "the sleeping run to start", func() bool { return s.run(tok, canceled).Status == "running" })
			if _, stderr, code := s.cli(tok, "cancel", strconv.FormatInt(canceled, 10)); code != 0 {
				t.Fatalf("flowd cancel: %s", stderr)
			}
			for id := range want {
				waitFor(t, "failed attempts of run "+strconv.FormatInt(id, 10), func() bool {
					n := s.notifications(tok, id)
					return len(n) == 1 && n[0].Attempts >= 2 && len(n[0].History) >= 2
				})
				n := s.notifications(tok, id)[0]
				if n.Status != "pending" || n.History[0].StatusCode != 0 || !strings.Contains(n.History[0].Error, "refused") {
					t.Errorf("run %d, receiver down: %+v", id, n)
				}
			}
			if n := s.notifications(tok, canceled); len(n) != 0 {
				t.Errorf("a canceled run notified targets that want success and failure only: %+v", n)
			}
			out, _, code := s.cli(tok, "notifications", strconv.FormatInt(failed, 10))
			if code != 0 || !strings.Contains(out, "pending  http://"+addr+"/hooks/flowd (signed with HOOK_KEY)") || !strings.Contains(out, "refused") {
				t.Errorf("flowd notifications while the receiver is down:\n%s", out)
			}

			s.crash() // the pending notifications live in the database
			s = startServerEnv(t, data, dsn, env)
			tok = s.token("admin", adminPassword)

			rc := &notifyReceiver{t: t, key: "e2e-hook-key", runs: map[string]int64{}, statuses: map[int64]string{}}
			up, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the receiver cannot take its port back: %v", err)
			}
			hs := &http.Server{Handler: rc}
			go hs.Serve(up)
			t.Cleanup(func() { hs.Close() })

			for id := range want {
				waitFor(t, "run "+strconv.FormatInt(id, 10)+" delivered", func() bool {
					n := s.notifications(tok, id)
					return len(n) == 1 && n[0].Status == "delivered"
				})
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.bad) > 0 {
				t.Errorf("bad requests: %v", rc.bad)
			}
			byRun := map[int64]int{}
			for _, id := range rc.runs {
				byRun[id]++
			}
			if len(byRun) != len(want) || len(rc.runs) != len(want) {
				t.Errorf("receiver got runs %v by delivery; want each of %v once", rc.runs, want)
			}
			for id, st := range want {
				if byRun[id] != 1 || rc.statuses[id] != st {
					t.Errorf("run %d: %d deliveries, status %q; want 1, %s", id, byRun[id], rc.statuses[id], st)
				}
			}
			out, _, _ = s.cli(tok, "notifications", strconv.FormatInt(ok1, 10))
			if !strings.HasPrefix(out, "delivered  http://"+addr) || !strings.Contains(out, "204") {
				t.Errorf("flowd notifications once delivered:\n%s", out)
			}
		})
	}
}
