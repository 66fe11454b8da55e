package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

func TestPipelines(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
		p, err := s.PipelineCreate(ctx, "hello", "v1", []byte("sealed-1"), alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Revision != 1 || p.CreatedBy != "alice" || p.Source != "v1" {
			t.Fatalf("PipelineCreate = %+v", p)
		}
		if role, err := s.MemberRole(ctx, p.ID, alice.ID); err != nil || role != "admin" {
			t.Fatalf("creator's role = %q, %v; want admin", role, err)
		}
		if _, err := s.PipelineCreate(ctx, "hello", "again", nil, bob.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("same name: %v, want ErrConflict", err)
		}
		if _, err := s.PipelineCreate(ctx, "orphan", "x", nil, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown creator: %v, want ErrNotFound", err)
		}

		p2, err := s.PipelineUpdate(ctx, p.ID, "v2", nil, bob.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p2.Revision != 2 || p2.Source != "v2" || p2.Secrets != nil || p2.CreatedBy != "alice" {
			t.Fatalf("PipelineUpdate = %+v", p2)
		}
		got, err := s.PipelineGet(ctx, "hello")
		if err != nil || got.Revision != 2 || got.Source != "v2" || !got.CreatedAt.Equal(p.CreatedAt) {
			t.Fatalf("PipelineGet = %+v, %v", got, err)
		}
		old, err := s.PipelineRevision(ctx, p.ID, 1)
		if err != nil || old.Source != "v1" || !bytes.Equal(old.Secrets, []byte("sealed-1")) || old.Revision != 1 {
			t.Fatalf("PipelineRevision(1) = %+v, %v", old, err)
		}
		if _, err := s.PipelineRevision(ctx, p.ID, 3); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revision 3: %v, want ErrNotFound", err)
		}
		if _, err := s.PipelineUpdate(ctx, 9999, "x", nil, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown pipeline: %v, want ErrNotFound", err)
		}
		if _, err := s.PipelineGet(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("PipelineGet(nope): %v, want ErrNotFound", err)
		}
	})
}

func TestPipelineListWithLastRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
		zeta := mustPipeline(t, s, "zeta", alice.ID)
		alpha := mustPipeline(t, s, "alpha", bob.ID)
		mustPipeline(t, s, "mid", alice.ID)
		for range 3 {
			mustRun(t, s, zeta.ID, twoStages())
		}
		mustRun(t, s, alpha.ID, twoStages())

		list, err := s.PipelineList(ctx, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ps := range list {
			names = append(names, ps.Name)
		}
		if len(list) != 3 || names[0] != "alpha" || names[1] != "mid" || names[2] != "zeta" {
			t.Fatalf("PipelineList(all) names = %v", names)
		}
		if lr := list[2].LastRun; lr == nil || lr.Number != 3 || lr.Pipeline != "zeta" || lr.Status != run.Queued || lr.Variables["abc"] != "123" {
			t.Fatalf("zeta LastRun = %+v, want run 3", lr)
		}
		if lr := list[0].LastRun; lr == nil || lr.Number != 1 {
			t.Fatalf("alpha LastRun = %+v, want run 1", lr)
		}
		if list[1].LastRun != nil {
			t.Fatalf("mid LastRun = %+v, want nil", list[1].LastRun)
		}

		mine, err := s.PipelineList(ctx, bob.ID, false)
		if err != nil || len(mine) != 1 || mine[0].Name != "alpha" {
			t.Fatalf("PipelineList(bob) = %+v, %v; want alpha only", mine, err)
		}
	})
}

func TestPipelineDeleteCascades(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u, p := fixture(t, s)
		r := mustRun(t, s, p.ID, twoStages())
		c := mustClaim(t, s)
		if err := s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, JobID: c.Job.ID, Data: []byte("hi\n")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PipelineDelete(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.PipelineDelete(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.PipelineGet(ctx, "hello"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("PipelineGet after delete: %v, want ErrNotFound", err)
		}
		if _, err := s.PipelineRevision(ctx, p.ID, 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revision after delete: %v, want ErrNotFound", err)
		}
		if _, err := s.RunGet(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RunGet after delete: %v, want ErrNotFound", err)
		}
		if logs, err := s.LogRead(ctx, r.ID, 0, 10); err != nil || len(logs) != 0 {
			t.Fatalf("LogRead after delete = %d chunks, %v", len(logs), err)
		}
		if role, err := s.MemberRole(ctx, p.ID, u.ID); err != nil || role != "" {
			t.Fatalf("MemberRole after delete = %q, %v", role, err)
		}
		if n, err := s.JobQueueDepth(ctx); err != nil || n != 0 {
			t.Fatalf("JobQueueDepth after delete = %d, %v", n, err)
		}
		// The name is free again.
		mustPipeline(t, s, "hello", u.ID)
	})
}

func TestMembers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, p := fixture(t, s)
		bob, carol := mustUser(t, s, "bob"), mustUser(t, s, "carol")
		if err := s.MemberSet(ctx, p.ID, carol.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		if err := s.MemberSet(ctx, p.ID, bob.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		if err := s.MemberSet(ctx, p.ID, bob.ID, "developer"); err != nil {
			t.Fatal(err)
		}
		if err := s.MemberSet(ctx, p.ID, bob.ID, "owner"); err == nil {
			t.Fatal("MemberSet(owner) succeeded, want an error")
		}
		if err := s.MemberSet(ctx, p.ID, 9999, "viewer"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNotFound", err)
		}
		list, err := s.MemberList(ctx, p.ID)
		want := []store.Member{{alice.ID, "alice", "admin"}, {bob.ID, "bob", "developer"}, {carol.ID, "carol", "viewer"}}
		if err != nil || len(list) != len(want) {
			t.Fatalf("MemberList = %+v, %v", list, err)
		}
		for i := range want {
			if list[i] != want[i] {
				t.Errorf("member %d = %+v, want %+v", i, list[i], want[i])
			}
		}
		if err := s.MemberDelete(ctx, p.ID, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.MemberDelete(ctx, p.ID, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second MemberDelete: %v, want ErrNotFound", err)
		}
		if role, err := s.MemberRole(ctx, p.ID, bob.ID); err != nil || role != "" {
			t.Fatalf("MemberRole after delete = %q, %v", role, err)
		}
		// Deleting a user removes their memberships.
		if err := s.UserDelete(ctx, carol.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.MemberList(ctx, p.ID); len(list) != 1 {
			t.Fatalf("members after deleting carol = %+v, want alice only", list)
		}
	})
}
