package notify_test

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/notify"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

func forEachStore(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, storetest.Open(t, d))
		})
	}
}

// received is what the test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver answers each POST with the next of codes (the last one repeats) and keeps them.
type receiver struct {
	mu    sync.Mutex
	codes []int
	got   []received
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, received{r.Header.Clone(), b})
	code := rc.codes[min(len(rc.got), len(rc.codes))-1]
	w.WriteHeader(code)
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// setup stores a pipeline whose notify targets url (signed by HOOK_KEY, on failure and
// canceled) and a canceled run of it; it returns the notifier, its clock and the run.
func setup(t *testing.T, s *store.Store, url string) (*notify.Notifier, *time.Time, run.Run) {
	ctx := t.Context()
	box, err := secret.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.UserCreate(ctx, "alice", "x", true)
	if err != nil {
		t.Fatal(err)
	}
	src := "name: hooks\nvariables:\n  HOOK_KEY: {secret: true}\nnotify:\n  - url: " + url + "\n    on: [failure, canceled]\n    secret: HOOK_KEY\n" +
		"  - url: " + url + "/success-only\n    on: [success]\n" +
		"stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	sealed, err := trigger.SealSecrets(box, map[string]string{"HOOK_KEY": "k3y"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PipelineCreate(ctx, "hooks", src, sealed, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Revision: p.Revision, Trigger: run.TriggerManual, TriggeredBy: "alice",
		SecretVariables: sealed, Jobs: []run.Job{{Stage: 0, StageName: "s", Index: 0, Name: "j", Status: run.Queued,
			Steps: []run.Step{{Index: 0, Name: "make", Script: "make", Status: run.Queued}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = s.RunCancel(ctx, r.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().UTC().Truncate(time.Second)
	n := &notify.Notifier{Store: s, Box: box, ExternalURL: "https://ci.example.com", Version: "v1.2.3",
		Logger: storetest.Logger(t), Now: func() time.Time { return clock }, Backoff: 10 * time.Second, MaxBackoff: time.Minute}
	return n, &clock, r
}

// TestNotifierRetriesThenDelivers: a canceled run notifies the target that wants canceled (not
// the success-only one), signed with the pipeline's secret; 500 answers are tried again after
// 10 s, then 20 s; the 200 delivers it, and each attempt is kept.
func TestNotifierRetriesThenDelivers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		rc := &receiver{codes: []int{500, 502, 200}}
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		n, clock, r := setup(t, s, srv.URL)
		step := func(d time.Duration, wantPosts int) {
			t.Helper()
			*clock = clock.Add(d)
			if err := n.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if got := len(rc.all()); got != wantPosts {
				t.Fatalf("after %s: %d posts, want %d", d, got, wantPosts)
			}
		}
		step(0, 1)
		step(9*time.Second, 1) // the retry is due 10 s after the first attempt
		step(time.Second, 2)
		step(19*time.Second, 2) // then 20 s
		step(time.Second, 3)
		step(time.Hour, 3) // delivered: never again

		got := rc.all()
		var delivery string
		for i, g := range got {
			h := g.header
			ts := h.Get("X-Flowd-Timestamp")
			if want := notify.Sign([]byte("k3y"), ts, g.body); !hmac.Equal([]byte(h.Get("X-Flowd-Signature")), []byte(want)) {
				t.Errorf("post %d: signature %q, want %q", i, h.Get("X-Flowd-Signature"), want)
			}
			if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "flowd/v1.2.3" || h.Get("X-Flowd-Event") != "run.ended" {
				t.Errorf("post %d: headers %v", i, h)
			}
			if i == 0 {
				delivery = h.Get("X-Flowd-Delivery")
			} else if h.Get("X-Flowd-Delivery") != delivery {
				t.Errorf("post %d: delivery %q, want the first's %q", i, h.Get("X-Flowd-Delivery"), delivery)
			}
			var p notify.Payload
			if err := json.Unmarshal(g.body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Attempt != i+1 || p.DeliveryID != delivery || p.Run.ID != r.ID || p.Run.Status != run.Canceled || p.Run.Pipeline != "hooks" ||
				p.Run.Number != r.Number || p.Run.URL != "https://ci.example.com/runs/"+strconv.FormatInt(r.ID, 10) || p.Run.Commit != nil || p.Run.Trigger != "manual" {
				t.Errorf("post %d: payload %+v", i, p)
			}
		}
		list, err := s.RunNotifications(ctx, r.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("RunNotifications = %+v, %v", list, err)
		}
		l := list[0]
		if l.Status != store.NotifyDelivered || l.Attempts != 3 || len(l.History) != 3 || l.History[0].StatusCode != 500 ||
			l.History[1].StatusCode != 502 || l.History[2].StatusCode != 200 || l.History[0].Error == "" || l.History[2].Error != "" {
			t.Errorf("notification = %+v", l)
		}
	})
}

// TestNotifierGivesUp: a receiver that never answers 2xx is tried with doubling delays (capped)
// until 24 h after the run ended, then the notification is failed and no longer tried.
func TestNotifierGivesUp(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		rc := &receiver{codes: []int{503}}
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		n, clock, r := setup(t, s, srv.URL)
		n.MaxBackoff = 10 * time.Minute
		end := r.FinishedAt.Add(24 * time.Hour)
		for clock.Before(end.Add(20 * time.Minute)) {
			if err := n.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			*clock = clock.Add(5 * time.Minute)
		}
		posts := len(rc.all())
		// Ticks every 5 min; delays 10 s, 20 s… then every 10 min (the cap) for 24 h: about 150.
		if posts < 140 || posts > 160 {
			t.Errorf("%d posts in 24 h, want about 150", posts)
		}
		list, err := s.RunNotifications(ctx, r.ID)
		if err != nil || len(list) != 1 || list[0].Status != store.NotifyFailed || list[0].FinishedAt == nil || list[0].Attempts != posts {
			t.Fatalf("RunNotifications = %+v, %v", list, err)
		}
		*clock = clock.Add(time.Hour)
		if err := n.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rc.all()) != posts {
			t.Error("a failed notification was tried again")
		}
	})
}
