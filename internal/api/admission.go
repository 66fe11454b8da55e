package api

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// DefaultMaxWebhooks is how many webhook requests are handled at once when
// Server.MaxWebhooks is 0.
const DefaultMaxWebhooks = 256

// triggerShare is the part of the server's webhook slots one trigger may hold: 1/4, so the
// slow senders of one URL leave 3/4 of the server to the others, and a burst to one URL (the
// rate limit allows 100 at once by default) fits its share and line.
const triggerShare = 4

// webhookSlotWait is how long a webhook request waits for a slot before it is refused.
const webhookSlotWait = time.Second

// busyServer and busyTrigger are the webhook answers when the server's slots, or the trigger's
// share of them, are taken: 503, nothing read or stored.
var (
	busyServer = []byte(`{"error":{"code":"unavailable","message":"the server is busy; nothing was accepted — retry after 1 second"},` +
		`"trace":[{"step":"admission","ok":false,"detail":"every webhook slot of the server is taken; the request was not read"}]}`)
	busyTrigger = []byte(`{"error":{"code":"unavailable","message":"this webhook URL has too many requests in progress; nothing was accepted — retry after 1 second"},` +
		`"trace":[{"step":"admission","ok":false,"detail":"every webhook slot this trigger may hold is taken; the request was not read"}]}`)
)

// admission bounds the webhook requests being handled: at most len(slots) at once across the
// server, at most perTrigger of them for any one trigger, and as many again of each waiting.
// A request whose trigger's line is full, or that finds the server's waiting line full, or that
// waits webhookSlotWait without a slot, is refused before its body is read, so at overload
// memory stays bounded, callers get a quick 503 with Retry-After instead of a timeout, and the
// slow senders of one URL cannot take the slots of the others.
type admission struct {
	slots, waiting chan struct{}
	perTrigger     int

	mu       sync.Mutex
	triggers map[int64]*triggerLine // only triggers with requests in progress
}

// triggerLine is one trigger's requests in progress: slots holds a token per slot taken, users
// counts those and the ones waiting.
type triggerLine struct {
	slots chan struct{}
	users int
}

func newAdmission(n int) *admission {
	per := max(1, n/triggerShare)
	return &admission{slots: make(chan struct{}, n), waiting: make(chan struct{}, n),
		perTrigger: per, triggers: map[int64]*triggerLine{}}
}

// enter takes a slot of the trigger id and one of the server, waiting up to wait for them;
// release gives both back. A refusal is the answer's body (busyServer or busyTrigger).
func (a *admission) enter(id int64, done <-chan struct{}, wait time.Duration) (release func(), refusal []byte) {
	line := a.join(id)
	if line == nil {
		return nil, busyTrigger
	}
	release = func() {
		<-a.slots
		a.leave(id, line, true)
	}
	ownSlot := tryPut(line.slots)
	if ownSlot && tryPut(a.slots) {
		return release, nil
	}
	select {
	case a.waiting <- struct{}{}:
		defer func() { <-a.waiting }()
	default:
		a.leave(id, line, ownSlot)
		return nil, busyServer
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	if !ownSlot {
		select {
		case line.slots <- struct{}{}:
		case <-t.C:
			a.leave(id, line, false)
			return nil, busyTrigger
		case <-done:
			a.leave(id, line, false)
			return nil, busyTrigger
		}
	}
	select {
	case a.slots <- struct{}{}:
		return release, nil
	case <-t.C:
	case <-done:
	}
	a.leave(id, line, true)
	return nil, busyServer
}

// join counts a request of trigger id in; nil when the trigger has its slots and as many
// requests again waiting already.
func (a *admission) join(id int64) *triggerLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	line := a.triggers[id]
	if line == nil {
		line = &triggerLine{slots: make(chan struct{}, a.perTrigger)}
		a.triggers[id] = line
	}
	if line.users >= 2*a.perTrigger {
		return nil
	}
	line.users++
	return line
}

// leave counts a request of trigger id out, giving back its trigger slot when it holds one.
func (a *admission) leave(id int64, line *triggerLine, holdsSlot bool) {
	if holdsSlot {
		<-line.slots
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	line.users--
	if line.users == 0 {
		delete(a.triggers, id)
	}
}

// tryPut puts a token in sem if there is room at once.
func tryPut(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// admit decides whether the webhook request r may be handled, before anything of its body is
// read. A token no trigger has is answered 404 at once, without a slot: finding it is one
// indexed read, or none when the URL had a delivery in the last seconds (trigger.Webhooks.Find;
// a trigger disabled or rotated since is still answered as such by Deliver, so the change takes
// effect at the next request). Any other request waits for a slot of its trigger and one of
// the server (see admission). When admit refuses, it has answered.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, start time.Time) (release func(), ok bool) {
	t, err := s.webhooks().Find(r.Context(), r.PathValue("token"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.refuse(w, trigger.UnknownToken(), start)
		return nil, false
	case err != nil:
		// The database failed; Deliver, with a slot of the "unknown" trigger 0, answers it.
		s.logger().Debug("api: webhook token look-up failed before admission", "err", err)
	}
	release, busy := s.admission.enter(t.PipelineID, r.Context().Done(), webhookSlotWait)
	if busy != nil {
		s.refuse(w, trigger.Outcome{Code: trigger.CodeUnavailable, Body: busy, RetryAfter: time.Second}, start)
		return nil, false
	}
	return release, true
}

// refuse answers a webhook request whose body was not read, and closes the connection after
// the answer: otherwise the server would read (and wait for) the rest of the body first.
func (s *Server) refuse(w http.ResponseWriter, out trigger.Outcome, start time.Time) {
	w.Header().Set("Connection", "close")
	s.writeOutcome(w, out, start)
}
