package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/flowd/flowd/internal/store"
)

func mustEnable(t *testing.T, s *store.Store, p store.WebhookEnable) store.WebhookTrigger {
	t.Helper()
	w, err := s.WebhookEnable(t.Context(), p)
	if err != nil {
		t.Fatalf("WebhookEnable(%+v): %v", p, err)
	}
	return w
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, p := fixture(t, s)
		bob := mustUser(t, s, "bob")
		h1, h2, h3 := []byte("hash-1"), []byte("hash-2"), []byte("hash-3")

		if _, err := s.WebhookGet(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookGet before enable: %v, want ErrNotFound", err)
		}
		if _, err := s.WebhookByTokenHash(ctx, h1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookByTokenHash before enable: %v, want ErrNotFound", err)
		}
		if _, err := s.WebhookDisable(ctx, p.ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookDisable before enable: %v, want ErrNotFound", err)
		}
		if _, err := s.WebhookRotate(ctx, p.ID, alice.ID, h3, []byte("sealed-3")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookRotate before enable: %v, want ErrNotFound", err)
		}
		if _, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: alice.ID}); err == nil {
			t.Fatal("first WebhookEnable without a token succeeded")
		}
		if _, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: 9999, OwnerID: alice.ID, TokenHash: h1, TokenSealed: h1}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookEnable(unknown pipeline): %v, want ErrNotFound", err)
		}
		if _, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: 9999, TokenHash: h1, TokenSealed: h1}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookEnable(unknown owner): %v, want ErrNotFound", err)
		}

		// 1. alice enables with a secret.
		w := mustEnable(t, s, store.WebhookEnable{PipelineID: p.ID, OwnerID: alice.ID, TokenHash: h1,
			TokenSealed: []byte("sealed-1"), SetSecret: true, SecretSealed: []byte("secret")})
		if !w.Enabled || w.PipelineID != p.ID || w.Pipeline != "hello" || !bytes.Equal(w.TokenHash, h1) ||
			string(w.TokenSealed) != "sealed-1" || string(w.SecretSealed) != "secret" || w.OwnerID != alice.ID ||
			w.Owner != "alice" || w.EnabledAt == nil || w.UpdatedAt.IsZero() {
			t.Fatalf("first enable = %+v", w)
		}
		if got, err := s.WebhookGet(ctx, p.ID); err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("WebhookGet = %+v, %v; want %+v", got, err, w)
		}
		if got, err := s.WebhookByTokenHash(ctx, h1); err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("WebhookByTokenHash = %+v, %v; want %+v", got, err, w)
		}

		// 2. bob disables: the URL, secret and owner stay.
		w, err := s.WebhookDisable(ctx, p.ID, bob.ID)
		if err != nil || w.Enabled || w.EnabledAt != nil || !bytes.Equal(w.TokenHash, h1) || w.Owner != "alice" ||
			string(w.SecretSealed) != "secret" {
			t.Fatalf("WebhookDisable = %+v, %v", w, err)
		}
		if got, err := s.WebhookByTokenHash(ctx, h1); err != nil || got.Enabled {
			t.Fatalf("WebhookByTokenHash of a disabled trigger = %+v, %v; want it, disabled", got, err)
		}

		// 3. bob re-enables: same URL (h2 ignored), bob owns it, the secret is kept.
		w = mustEnable(t, s, store.WebhookEnable{PipelineID: p.ID, OwnerID: bob.ID, TokenHash: h2, TokenSealed: []byte("sealed-2")})
		if !w.Enabled || !bytes.Equal(w.TokenHash, h1) || string(w.TokenSealed) != "sealed-1" || w.OwnerID != bob.ID ||
			w.Owner != "bob" || w.EnabledAt == nil || string(w.SecretSealed) != "secret" {
			t.Fatalf("re-enable = %+v", w)
		}
		if _, err := s.WebhookByTokenHash(ctx, h2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookByTokenHash(ignored hash): %v, want ErrNotFound", err)
		}

		// 4. bob removes the secret.
		w = mustEnable(t, s, store.WebhookEnable{PipelineID: p.ID, OwnerID: bob.ID, SetSecret: true})
		if w.SecretSealed != nil || !bytes.Equal(w.TokenHash, h1) {
			t.Fatalf("enable removing the secret = %+v", w)
		}

		// 5. alice rotates: the old hash stops working at once.
		w, err = s.WebhookRotate(ctx, p.ID, alice.ID, h3, []byte("sealed-3"))
		if err != nil || !bytes.Equal(w.TokenHash, h3) || string(w.TokenSealed) != "sealed-3" || !w.Enabled || w.Owner != "bob" {
			t.Fatalf("WebhookRotate = %+v, %v", w, err)
		}
		if _, err := s.WebhookByTokenHash(ctx, h1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookByTokenHash(old hash) after rotate: %v, want ErrNotFound", err)
		}
		if got, err := s.WebhookByTokenHash(ctx, h3); err != nil || got.PipelineID != p.ID {
			t.Fatalf("WebhookByTokenHash(new hash) = %+v, %v", got, err)
		}

		type entry struct{ actor, action, detail string }
		want := []entry{
			{"alice", "rotate", "new URL"},
			{"bob", "secret", "removed"},
			{"bob", "enable", "owner bob"},
			{"bob", "enable", "owner bob"},
			{"bob", "disable", ""},
			{"alice", "secret", "set"},
			{"alice", "enable", "owner alice"},
		}
		log, err := s.AuditList(ctx, p.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []entry
		for i, e := range log {
			got = append(got, entry{e.Actor, e.Action, e.Detail})
			if e.PipelineID != p.ID || e.At.IsZero() || (i > 0 && e.ID >= log[i-1].ID) {
				t.Errorf("audit entry %d = %+v", i, e)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("AuditList =\n%v\nwant\n%v", got, want)
		}
		if log, err := s.AuditList(ctx, p.ID, 2); err != nil || len(log) != 2 || log[0].Action != "rotate" {
			t.Fatalf("AuditList(limit 2) = %+v, %v", log, err)
		}

		// A token hash belongs to one trigger.
		other := mustPipeline(t, s, "other", alice.ID)
		if _, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: other.ID, OwnerID: alice.ID, TokenHash: h3, TokenSealed: h3}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("WebhookEnable with a taken token hash: %v, want ErrConflict", err)
		}
		if log, err := s.AuditList(ctx, other.ID, 0); err != nil || len(log) != 0 {
			t.Fatalf("AuditList of a failed enable = %+v, %v; want nothing", log, err)
		}
	})
}

func TestWebhookOwnerDeleted(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		bob := mustUser(t, s, "bob")
		mustEnable(t, s, store.WebhookEnable{PipelineID: p.ID, OwnerID: bob.ID, TokenHash: []byte("h"), TokenSealed: []byte("s")})
		if err := s.UserDelete(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		w, err := s.WebhookGet(ctx, p.ID)
		if err != nil || w.OwnerID != 0 || w.Owner != "bob" || !w.Enabled {
			t.Fatalf("WebhookGet after the owner's deletion = %+v, %v; want OwnerID 0, Owner bob", w, err)
		}
		if log, err := s.AuditList(ctx, p.ID, 0); err != nil || len(log) != 1 || log[0].Actor != "bob" {
			t.Fatalf("AuditList = %+v, %v", log, err)
		}
		if _, err := s.WebhookDisable(ctx, p.ID, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookDisable by a deleted user: %v, want ErrNotFound", err)
		}
	})
}
