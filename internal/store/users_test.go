package store_test

import (
	"errors"
	"testing"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.DSN(t, dialect)
			for i := range 3 {
				s, err := store.Open(t.Context(), dsn, storetest.Logger(t))
				if err != nil {
					t.Fatalf("open #%d: %v", i+1, err)
				}
				if i == 0 {
					if _, err := s.UserCreate(t.Context(), "alice", "h", true); err != nil {
						t.Fatal(err)
					}
				}
				n, err := s.UserCount(t.Context())
				if err != nil || n != 1 {
					t.Fatalf("open #%d: UserCount = %d, %v; want 1", i+1, n, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		bob, err := s.UserCreate(ctx, "bob", "h1", true)
		if err != nil {
			t.Fatal(err)
		}
		if bob.ID == 0 || !bob.Admin || bob.CreatedAt.IsZero() {
			t.Fatalf("UserCreate = %+v", bob)
		}
		alice := mustUser(t, s, "alice")
		if _, err := s.UserCreate(ctx, "bob", "h2", false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second bob: %v, want ErrConflict", err)
		}

		got, err := s.UserGet(ctx, "bob")
		if err != nil || got != bob {
			t.Fatalf("UserGet = %+v, %v; want %+v", got, err, bob)
		}
		if got, err := s.UserGetByID(ctx, alice.ID); err != nil || got != alice {
			t.Fatalf("UserGetByID = %+v, %v; want %+v", got, err, alice)
		}
		if _, err := s.UserGet(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UserGet(nobody): %v, want ErrNotFound", err)
		}
		if _, err := s.UserGetByID(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UserGetByID(9999): %v, want ErrNotFound", err)
		}

		list, err := s.UserList(ctx)
		if err != nil || len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
			t.Fatalf("UserList = %+v, %v; want alice, bob", list, err)
		}

		pw, no, yes := "h3", false, true
		up, err := s.UserUpdate(ctx, bob.ID, store.UserUpdate{PasswordHash: &pw, Admin: &no, Disabled: &yes})
		if err != nil {
			t.Fatal(err)
		}
		if up.PasswordHash != "h3" || up.Admin || !up.Disabled || up.Username != "bob" {
			t.Fatalf("UserUpdate = %+v", up)
		}
		if got, _ := s.UserGet(ctx, "bob"); got != up {
			t.Fatalf("after update UserGet = %+v, want %+v", got, up)
		}
		if _, err := s.UserUpdate(ctx, 9999, store.UserUpdate{Admin: &yes}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UserUpdate(9999): %v, want ErrNotFound", err)
		}

		if err := s.UserDelete(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.UserDelete(ctx, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if n, err := s.UserCount(ctx); err != nil || n != 1 {
			t.Fatalf("UserCount = %d, %v; want 1", n, err)
		}
	})
}

func TestTokens(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
		tok, err := s.TokenCreate(ctx, alice.ID, "cli", []byte("hash-1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TokenCreate(ctx, bob.ID, "dup", []byte("hash-1")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate hash: %v, want ErrConflict", err)
		}
		if _, err := s.TokenCreate(ctx, 9999, "x", []byte("hash-x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of unknown user: %v, want ErrNotFound", err)
		}
		u, got, err := s.TokenUser(ctx, []byte("hash-1"))
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != alice.ID || got.ID != tok.ID || got.Name != "cli" || got.LastUsedAt == nil {
			t.Fatalf("TokenUser = %+v, %+v", u, got)
		}
		if _, _, err := s.TokenUser(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown hash: %v, want ErrNotFound", err)
		}
		list, err := s.TokenList(ctx, alice.ID)
		if err != nil || len(list) != 1 || list[0].LastUsedAt == nil {
			t.Fatalf("TokenList = %+v, %v; want one used token", list, err)
		}
		if err := s.TokenDelete(ctx, bob.ID, tok.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete someone else's token: %v, want ErrNotFound", err)
		}
		if err := s.TokenDelete(ctx, alice.ID, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.TokenUser(ctx, []byte("hash-1")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted token: %v, want ErrNotFound", err)
		}
		// Deleting a user deletes their tokens.
		if _, err := s.TokenCreate(ctx, bob.ID, "b", []byte("hash-b")); err != nil {
			t.Fatal(err)
		}
		if err := s.UserDelete(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.TokenUser(ctx, []byte("hash-b")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of deleted user: %v, want ErrNotFound", err)
		}
	})
}
