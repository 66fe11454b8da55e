package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/store"
)

func sessionID(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s, "alice")
		id := sessionID("cookie-alice")
		created, err := s.SessionCreate(ctx, id, u.ID, "csrf-1", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatalf("SessionCreate: %v", err)
		}
		se, got, err := s.SessionGet(ctx, id)
		if err != nil {
			t.Fatalf("SessionGet: %v", err)
		}
		if !bytes.Equal(se.ID, id) || se.UserID != u.ID || se.CSRF != "csrf-1" || got.Username != "alice" {
			t.Errorf("SessionGet = %+v, %+v; want alice's session with csrf-1", se, got)
		}
		if !se.ExpiresAt.Equal(created.ExpiresAt) || !se.CreatedAt.Equal(created.CreatedAt) {
			t.Errorf("times read back differ: got %v/%v, created %v/%v", se.CreatedAt, se.ExpiresAt, created.CreatedAt, created.ExpiresAt)
		}
		if _, _, err := s.SessionGet(ctx, sessionID("another cookie")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionGet(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.SessionCreate(ctx, id, u.ID, "csrf-2", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("SessionCreate(same id) = %v, want ErrConflict", err)
		}
		if _, err := s.SessionCreate(ctx, sessionID("ghost"), u.ID+1000, "c", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionCreate(unknown user) = %v, want ErrNotFound", err)
		}
		if err := s.SessionDelete(ctx, id); err != nil {
			t.Fatalf("SessionDelete: %v", err)
		}
		if _, _, err := s.SessionGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionGet after delete = %v, want ErrNotFound", err)
		}
		if err := s.SessionDelete(ctx, id); err != nil {
			t.Errorf("SessionDelete twice = %v, want nil", err)
		}
	})
}

func TestSessionExpiredDisabledDeleted(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
		expired, live := sessionID("expired"), sessionID("live")
		if _, err := s.SessionCreate(ctx, expired, alice.ID, "c", time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionCreate(ctx, live, alice.ID, "c", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SessionGet(ctx, expired); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionGet(expired) = %v, want ErrNotFound", err)
		}

		// A disabled user's sessions stop working, and work again once enabled.
		bobs := sessionID("bob")
		if _, err := s.SessionCreate(ctx, bobs, bob.ID, "c", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		yes, no := true, false
		if _, err := s.UserUpdate(ctx, bob.ID, store.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SessionGet(ctx, bobs); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionGet(disabled user) = %v, want ErrNotFound", err)
		}
		if _, err := s.UserUpdate(ctx, bob.ID, store.UserUpdate{Disabled: &no}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SessionGet(ctx, bobs); err != nil {
			t.Errorf("SessionGet(re-enabled user) = %v, want the session", err)
		}

		// A new password ends the user's sessions; another change does not.
		bobs2 := sessionID("bob2")
		if _, err := s.SessionCreate(ctx, bobs2, bob.ID, "c", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		hash := "$2a$04$new-hash-for-the-test"
		if _, err := s.UserUpdate(ctx, bob.ID, store.UserUpdate{PasswordHash: &hash}); err != nil {
			t.Fatal(err)
		}
		for _, id := range [][]byte{bobs, bobs2} {
			if _, _, err := s.SessionGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SessionGet after a password change = %v, want ErrNotFound", err)
			}
		}

		// Deleting a user deletes their sessions.
		carols := sessionID("carol")
		if _, err := s.SessionCreate(ctx, carols, carol.ID, "c", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.UserDelete(ctx, carol.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", carol.ID); err != nil || n != 0 {
			t.Errorf("sessions of a deleted user: %d, %v; want 0", n, err)
		}

		// Prune removes exactly the expired ones.
		n, err := s.SessionPrune(ctx, time.Now())
		if err != nil || n != 1 {
			t.Errorf("SessionPrune = %d, %v; want 1 (the expired one)", n, err)
		}
		if _, _, err := s.SessionGet(ctx, live); err != nil {
			t.Errorf("SessionGet(live) after prune = %v", err)
		}
		if n, err := s.SessionPrune(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
			t.Errorf("SessionPrune(later) = %d, %v; want 1 (alice's live one: bob's ended with his new password)", n, err)
		}
	})
}
