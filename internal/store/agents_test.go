package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

func agentToken(t *testing.T, s *store.Store, name string) store.AgentToken {
	t.Helper()
	sum := sha256.Sum256([]byte("secret of " + name))
	tok, err := s.AgentTokenCreate(t.Context(), name, map[string]string{"os": "linux"}, sum[:], "alice")
	if err != nil {
		t.Fatalf("AgentTokenCreate: %v", err)
	}
	return tok
}

func registerAgent(t *testing.T, s *store.Store, tokenID int64, name, instance string) store.Agent {
	t.Helper()
	a, err := s.AgentRegister(t.Context(), store.AgentRegister{TokenID: tokenID, Name: name, Instance: instance,
		Labels: map[string]string{"os": "linux"}, Capacity: 2, Version: "v1", TTL: time.Minute})
	if err != nil {
		t.Fatalf("AgentRegister(%s, %s): %v", name, instance, err)
	}
	return a
}

// TestAgentRegister: a token is found by its hash only; registering again (a crash-looping
// agent) keeps one agent row and one node row, updating them; a name held by a server or an
// agent of another token is refused.
func TestAgentRegister(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		tok := agentToken(t, s, "build")
		sum := sha256.Sum256([]byte("secret of build"))
		if got, err := s.AgentTokenFind(ctx, sum[:]); err != nil || got.ID != tok.ID || got.Labels["os"] != "linux" || got.RevokedAt != nil {
			t.Fatalf("AgentTokenFind = %+v, %v", got, err)
		}
		wrong := sha256.Sum256([]byte("guess"))
		if _, err := s.AgentTokenFind(ctx, wrong[:]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentTokenFind(wrong) = %v; want ErrNotFound", err)
		}
		if _, err := s.AgentTokenCreate(ctx, "build", nil, wrong[:], "alice"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("AgentTokenCreate(same name) = %v; want ErrConflict", err)
		}
		var first store.Agent
		for i := range 5 {
			a := registerAgent(t, s, tok.ID, "build-1", strings.Repeat(string(rune('a'+i)), 32))
			if i == 0 {
				first = a
			}
			if a.ID != first.ID {
				t.Fatalf("register %d gave agent %d, want %d", i, a.ID, first.ID)
			}
		}
		as, err := s.AgentList(ctx)
		if err != nil || len(as) != 1 || as[0].Instance != strings.Repeat("e", 32) || as[0].Capacity != 2 {
			t.Fatalf("AgentList = %+v, %v; want one agent of the last instance", as, err)
		}
		n := nodeByName(t, s, "build-1")
		if n.Kind != store.NodeAgent || !n.Live || n.Agent == nil || n.Agent.Labels["os"] != "linux" || n.Agent.Capacity != 2 {
			t.Fatalf("node = %+v (agent %+v)", n, n.Agent)
		}
		other := agentToken(t, s, "other")
		if _, err := s.AgentRegister(ctx, store.AgentRegister{TokenID: other.ID, Name: "build-1", Instance: "x", Capacity: 1, TTL: time.Minute}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("register another token's name = %v; want ErrConflict", err)
		}
		if _, err := s.NodeRegister(ctx, server("web-1", "i1"), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AgentRegister(ctx, store.AgentRegister{TokenID: tok.ID, Name: "web-1", Instance: "x", Capacity: 1, TTL: time.Minute}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("register a server's name = %v; want ErrConflict", err)
		}
		if err := s.AgentPause(ctx, "build-1", true); err != nil {
			t.Fatal(err)
		}
		if a := registerAgent(t, s, tok.ID, "build-1", "f"); !a.Paused {
			t.Fatalf("register after pause: %+v; want paused kept", a)
		}
		if err := s.AgentPause(ctx, "nobody", true); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentPause(nobody) = %v", err)
		}
	})
}

// TestAgentAttemptLog: an agent's attempt takes its log by offset (a resend is skipped, a gap
// refused with the length), its checksum is checked at the end, and a mismatch drops only its
// chunks.
func TestAgentAttemptLog(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		tok := agentToken(t, s, "build")
		registerAgent(t, s, tok.ID, "build-1", "i1")
		c := claimAs(t, s, store.Holder{Node: "build-1", Instance: "i1"}, "build-1/1", time.Minute)
		if _, err := s.AgentAttemptGet(ctx, tok.ID, c.Attempt.ID, c.Attempt.Token); err != nil {
			t.Fatalf("AgentAttemptGet: %v", err)
		}
		if _, err := s.AgentAttemptGet(ctx, tok.ID, c.Attempt.ID, strings.Repeat("0", 32)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentAttemptGet(wrong token) = %v", err)
		}
		other := agentToken(t, s, "other")
		if _, err := s.AgentAttemptGet(ctx, other.ID, c.Attempt.ID, c.Attempt.Token); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentAttemptGet(other token) = %v", err)
		}
		if st, err := s.AgentHeartbeat(ctx, c.Attempt.ID, time.Minute); err != nil || st != run.AttemptRunning {
			t.Fatalf("AgentHeartbeat = %s, %v", st, err)
		}
		n := nodeByName(t, s, "build-1")
		js, err := s.NodeJobs(ctx)
		if err != nil || n.JobsHeld != 1 || len(js) != 1 || js[0].Node != "build-1" || js[0].JobID != c.Job.ID || js[0].Runner != "build-1/1" {
			t.Fatalf("node %+v, jobs %+v, %v", n, js, err)
		}

		big := bytes.Repeat([]byte("0123456789abcde\n"), 5000) // 80,000 bytes: two chunks
		whole := append([]byte("hello\n"), big...)
		steps := []struct {
			offset int64
			data   []byte
			want   int64
			gap    bool
		}{
			{0, whole[:6], 6, false},
			{0, whole[:6], 6, false},                 // a resend: ignored
			{10, whole[10:20], 6, true},              // a gap
			{3, whole[3:], int64(len(whole)), false}, // overlaps: the rest is stored
		}
		for i, st := range steps {
			got, err := s.AttemptLogAppend(ctx, c.Attempt.ID, st.offset, st.data)
			var gap *store.LogGapError
			if st.gap != errors.As(err, &gap) || (!st.gap && err != nil) || got != st.want {
				t.Fatalf("append %d: %d, %v; want %d (gap %v)", i, got, err, st.want, st.gap)
			}
		}
		chunks, err := s.LogRead(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var stored []byte
		for _, ch := range chunks {
			if len(ch.Data) > 64<<10 || ch.JobID != c.Job.ID {
				t.Fatalf("chunk of %d bytes, job %d", len(ch.Data), ch.JobID)
			}
			stored = append(stored, ch.Data...)
		}
		if !bytes.Equal(stored, whole) || len(chunks) != 3 {
			t.Fatalf("stored %d bytes in %d chunks; want the %d sent, in 3", len(stored), len(chunks), len(whole))
		}
		length, sum, err := s.AttemptLogSum(ctx, c.Attempt.ID)
		if err != nil || length != int64(len(whole)) || sum != sha256.Sum256(whole) {
			t.Fatalf("AttemptLogSum = %d, %x, %v", length, sum, err)
		}

		end := store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, RunID: r.ID, Status: run.Success}
		end.Log = &store.LogSum{Length: length + 1, SHA256: sum}
		var lse *store.LogSumError
		if _, err := s.JobComplete(ctx, end); !errors.As(err, &lse) || lse.Mismatch || lse.Length != length {
			t.Fatalf("JobComplete(short log) = %v; want a LogSumError of length %d", err, length)
		}
		end.Log = &store.LogSum{Length: length, SHA256: sha256.Sum256([]byte("other"))}
		if _, err := s.JobComplete(ctx, end); !errors.As(err, &lse) || !lse.Mismatch {
			t.Fatalf("JobComplete(wrong checksum) = %v; want a mismatch", err)
		}
		if err := s.AttemptLogReset(ctx, c.Attempt.ID); err != nil {
			t.Fatal(err)
		}
		if chunks, _ := s.LogRead(ctx, r.ID, 0, 0); len(chunks) != 0 {
			t.Fatalf("after reset %d chunks are left", len(chunks))
		}
		if got, err := s.AttemptLogAppend(ctx, c.Attempt.ID, 0, []byte("again\n")); err != nil || got != 6 {
			t.Fatalf("append after reset = %d, %v", got, err)
		}
		end.Log = &store.LogSum{Length: 6, SHA256: sha256.Sum256([]byte("again\n"))}
		if _, err := s.JobComplete(ctx, end); err != nil {
			t.Fatalf("JobComplete(matching log) = %v", err)
		}
		if _, err := s.AttemptLogAppend(ctx, c.Attempt.ID, 6, []byte("late\n")); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("append after the end = %v; want ErrFenced", err)
		}
		if _, err := s.AgentHeartbeat(ctx, c.Attempt.ID, time.Minute); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("heartbeat after the end = %v; want ErrFenced", err)
		}
	})
}

// TestAgentAttemptsSurviveServerRestart: a server's start on SQLite (AttemptsRescueInstance
// with no node) takes back every server's attempts of other instances but leaves agents'
// alone; an agent's own register with a new instance settles its old attempts; revoking the
// token cancels its agents' live attempts at once.
func TestAgentAttemptsSurviveServerRestart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		tok := agentToken(t, s, "build")
		registerAgent(t, s, tok.ID, "build-1", "i1")
		c := claimAs(t, s, store.Holder{Node: "build-1", Instance: "i1"}, "build-1/1", time.Minute)
		done, err := s.AttemptsRescueInstance(ctx, store.Holder{Instance: "server-2"})
		if err != nil || len(done) != 0 {
			t.Fatalf("a server's restart rescued %+v, %v; want nothing of the agent's", done, err)
		}
		registerAgent(t, s, tok.ID, "build-1", "i2")
		done, err = s.AgentRescuePrevious(ctx, "build-1", "i2")
		if err != nil || len(done) != 1 || done[0].JobID != c.Job.ID || done[0].Outcome != run.Failed {
			t.Fatalf("AgentRescuePrevious = %+v, %v", done, err)
		}
		// The second stage is not open (the run failed); a new run gives the agent a job.
		r2 := mustRun(t, s, p.ID, twoStages())
		c2 := claimAs(t, s, store.Holder{Node: "build-1", Instance: "i2"}, "build-1/1", time.Minute)
		if c2.Run.ID != r2.ID {
			t.Fatalf("claimed run %d, want %d (run %d failed)", c2.Run.ID, r2.ID, r.ID)
		}
		revoked, done, err := s.AgentTokenRevoke(ctx, "build")
		if err != nil || revoked.RevokedAt == nil || len(done) != 1 || done[0].Outcome != run.Canceled {
			t.Fatalf("AgentTokenRevoke = %+v, %+v, %v", revoked, done, err)
		}
		if j := jobOf(t, s, r2.ID, c2.Job.ID); j.Status != run.Canceled || !strings.Contains(j.Message, "revoked") {
			t.Fatalf("job after revoke = %s %q", j.Status, j.Message)
		}
		ts, err := s.AgentTokenList(ctx)
		if err != nil || len(ts) != 1 || ts[0].RevokedAt == nil || ts[0].Agents != 1 {
			t.Fatalf("AgentTokenList = %+v, %v", ts, err)
		}
		if _, _, err := s.AgentTokenRevoke(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentTokenRevoke(nobody) = %v", err)
		}
	})
}
