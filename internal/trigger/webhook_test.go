package trigger_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook"
)

// hookSetup stores the definition with a webhook trigger owned by alice (an admin of it, through
// being its creator) and a signature secret, and returns its token.
func hookSetup(t *testing.T, st *store.Store, svc *trigger.Webhooks) (store.Pipeline, store.User, string) {
	t.Helper()
	ctx := context.Background()
	p := setup(t, st, svc.Box)
	u, err := st.UserGet(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	token, hash, err := trigger.NewWebhookToken()
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 43 || strings.ContainsAny(token, "+/=") {
		t.Fatalf("token %q is not 256 bits of URL-safe base64", token)
	}
	tokSealed, _ := svc.Box.Seal([]byte(token))
	secSealed, _ := svc.Box.Seal([]byte("k"))
	if _, err := st.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID, TokenHash: hash,
		TokenSealed: tokSealed, SetSecret: true, SecretSealed: secSealed}); err != nil {
		t.Fatal(err)
	}
	return p, u, token
}

type answer struct {
	Error *struct{ Code, Message string } `json:"error"`
	Trace webhook.Trace                   `json:"trace"`
}

func decode(t *testing.T, out trigger.Outcome) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(out.Body, &a); err != nil {
		t.Fatalf("answer %s: %v", out.Body, err)
	}
	return a
}

// TestDeliverOrder: each check refuses before the later ones are looked at, so a caller who
// cannot sign learns nothing about the owner or the pipeline's variables.
func TestDeliverOrder(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		var wakes atomic.Int32
		svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box, Wake: func() { wakes.Add(1) }},
			Box: box, MaxBody: 100, Limiter: webhook.NewLimiter(1000, 1000, 10)}
		p, u, token := hookSetup(t, st, svc)
		hdr := func(body string) http.Header {
			h := http.Header{"Content-Type": {"application/json"}}
			h.Set("X-Hub-Signature-256", sign("k", body))
			return h
		}

		// The owner is demoted: only a correctly signed, small request learns it.
		if err := st.MemberSet(ctx, p.ID, u.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		big := strings.Repeat("x", 101)
		cases := []struct {
			in   trigger.Incoming
			code string
			last string
		}{
			{trigger.Incoming{Token: token, Body: []byte(big), Headers: http.Header{}}, "payload_too_large", "size"},
			{trigger.Incoming{Token: token, Body: []byte(`{"TARGET":"moon"}`), Headers: http.Header{}}, "invalid_signature", "signature"},
			{trigger.Incoming{Token: token, Body: []byte(`{"TARGET":"moon"}`), Headers: hdr(`{"TARGET":"moon"}`)}, "insufficient_permissions", "permission"},
		}
		for _, c := range cases {
			out := svc.Deliver(ctx, c.in)
			a := decode(t, out)
			if a.Error == nil || a.Error.Code != c.code || string(out.Code) != c.code || out.DeliveryID == 0 {
				t.Errorf("got %s %s, want %s", out.Code, out.Body, c.code)
				continue
			}
			if last := a.Trace[len(a.Trace)-1]; last.Step != c.last || last.OK {
				t.Errorf("%s: trace ends %+v, want a failed %s", c.code, last, c.last)
			}
		}
		ok, problem, err := svc.OwnerStatus(ctx, mustTrigger(t, st, p.ID))
		if err != nil || ok || !strings.Contains(problem, "alice is only a viewer of pipeline hello") {
			t.Errorf("OwnerStatus = %v %q %v", ok, problem, err)
		}

		// Made a developer again: variables are checked, then a run starts and wakes the scheduler.
		if err := st.MemberSet(ctx, p.ID, u.ID, "developer"); err != nil {
			t.Fatal(err)
		}
		out := svc.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{"TARGET":"moon"}`), Headers: hdr(`{"TARGET":"moon"}`)})
		if out.Code != trigger.CodeInvalidVariables || wakes.Load() != 0 {
			t.Errorf("bad variables: %s %s (wakes %d)", out.Code, out.Body, wakes.Load())
		}
		start := time.Now()
		out = svc.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{}`), Headers: hdr(`{}`), IdempotencyKey: "a", ReceivedAt: start})
		if out.Code != trigger.CodeStarted || out.RunID == 0 || wakes.Load() != 1 {
			t.Fatalf("start: %s %s (wakes %d)", out.Code, out.Body, wakes.Load())
		}
		replay := svc.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{}`), Headers: hdr(`{}`), IdempotencyKey: "a"})
		if replay.Code != trigger.CodeReplayed || replay.RunID != out.RunID || !replay.Replayed || wakes.Load() != 1 {
			t.Errorf("replay: %s %s (wakes %d)", replay.Code, replay.Body, wakes.Load())
		}
		if !strings.Contains(string(replay.Body), `"replayed":true`) {
			t.Errorf("replay body %s", replay.Body)
		}
		dry := svc.Deliver(ctx, trigger.Incoming{Token: token, Body: []byte(`{}`), Headers: hdr(`{}`), DryRun: true})
		if dry.Code != trigger.CodeDryRun || dry.RunID != 0 || wakes.Load() != 1 {
			t.Errorf("dry run: %s %s (wakes %d)", dry.Code, dry.Body, wakes.Load())
		}
		ok, problem, err = svc.OwnerStatus(ctx, mustTrigger(t, st, p.ID))
		if err != nil || !ok || problem != "" {
			t.Errorf("OwnerStatus = %v %q %v", ok, problem, err)
		}
	})
}

// TestOwnerStatusGlobalAdmin: a global admin may run every pipeline, member or not.
func TestOwnerStatusGlobalAdmin(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	box := newBox(t)
	svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
	p := setup(t, st, box)
	ctx := context.Background()
	hash, _ := auth.HashPasswordCost("password1", 4)
	root, err := st.UserCreate(ctx, "root", hash, true)
	if err != nil {
		t.Fatal(err)
	}
	ok, problem, err := svc.OwnerStatus(ctx, store.WebhookTrigger{PipelineID: p.ID, Pipeline: p.Name, OwnerID: root.ID, Owner: "root"})
	if err != nil || !ok || problem != "" {
		t.Errorf("global admin: %v %q %v", ok, problem, err)
	}
	ok, problem, _ = svc.OwnerStatus(ctx, store.WebhookTrigger{PipelineID: p.ID, Pipeline: p.Name, OwnerID: 0, Owner: "ghost"})
	if ok || !strings.Contains(problem, "ghost was deleted") || !strings.Contains(problem, "enable it again as a user who may run hello") {
		t.Errorf("deleted owner: %v %q", ok, problem)
	}
}

func mustTrigger(t *testing.T, st *store.Store, pipelineID int64) store.WebhookTrigger {
	t.Helper()
	w, err := st.WebhookGet(context.Background(), pipelineID)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func storetestOpen(t *testing.T) *store.Store { return storetest.Open(t, "sqlite") }
