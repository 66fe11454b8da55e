package store

import (
	"context"
	"time"
)

// Session is a signed-in web UI session. ID is the SHA-256 of the cookie's value: the value
// itself is never stored, so a copy of the database signs nobody in.
type Session struct {
	ID        []byte
	UserID    int64
	CSRF      string // the token unsafe requests of this session must echo
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SessionCreate stores a session for userID that ends at expiresAt; ErrNotFound when the user
// is gone, ErrConflict when the id is taken.
func (s *Store) SessionCreate(ctx context.Context, id []byte, userID int64, csrf string, expiresAt time.Time) (Session, error) {
	se := Session{ID: id, UserID: userID, CSRF: csrf, CreatedAt: now(), ExpiresAt: expiresAt.UTC().Truncate(time.Microsecond)}
	err := s.write(ctx, func(tx db) error {
		_, err := tx.exec(ctx, `INSERT INTO sessions (id, user_id, csrf, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?)`, id, userID, csrf, tx.ts(se.CreatedAt), tx.ts(se.ExpiresAt))
		return err
	})
	if err != nil {
		return Session{}, wrap("create session", err)
	}
	return se, nil
}

// SessionGet finds a live session by id with its user. An unknown or expired session, and one
// whose user is disabled, are ErrNotFound.
func (s *Store) SessionGet(ctx context.Context, id []byte) (Session, User, error) {
	var (
		se Session
		u  User
	)
	r := s.reader()
	err := r.queryRow(ctx, `SELECT s.id, s.user_id, s.csrf, s.created_at, s.expires_at,
			u.id, u.username, u.password_hash, u.admin, u.disabled, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = ? AND s.expires_at > ? AND u.disabled = FALSE`, id, r.ts(now())).Scan(
		&se.ID, &se.UserID, &se.CSRF, timeScan{&se.CreatedAt}, timeScan{&se.ExpiresAt},
		&u.ID, &u.Username, &u.PasswordHash, &u.Admin, &u.Disabled, timeScan{&u.CreatedAt})
	if err != nil {
		return Session{}, User{}, wrap("get session", err)
	}
	return se, u, nil
}

// SessionDelete ends a session (sign-out); ending an unknown session is not an error.
func (s *Store) SessionDelete(ctx context.Context, id []byte) error {
	err := s.write(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "DELETE FROM sessions WHERE id = ?", id)
		return err
	})
	return wrap("delete session", err)
}

// SessionPrune removes the sessions that expired before at and returns how many.
func (s *Store) SessionPrune(ctx context.Context, at time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx db) error {
		var err error
		n, err = tx.execN(ctx, "DELETE FROM sessions WHERE expires_at <= ?", tx.ts(at.UTC()))
		return err
	})
	if err != nil {
		return 0, wrap("prune sessions", err)
	}
	return n, nil
}
