package store

import (
	"context"
	"errors"
	"time"
)

// tokenUseGranularity is how stale a token's LastUsedAt may get before a look-up writes it
// again, so authenticating a request is not a write every time.
const tokenUseGranularity = time.Minute

const tokenCols = "id, user_id, name, created_at, last_used_at"

func scanToken(row interface{ Scan(...any) error }, t *Token) error {
	return row.Scan(&t.ID, &t.UserID, &t.Name, timeScan{&t.CreatedAt}, nullTimeScan{&t.LastUsedAt})
}

// TokenCreate stores a token's hash.
func (s *Store) TokenCreate(ctx context.Context, userID int64, name string, hash []byte) (Token, error) {
	t := Token{UserID: userID, Name: name, CreatedAt: now()}
	err := s.write(ctx, func(tx db) error {
		return tx.queryRow(ctx, `INSERT INTO api_tokens (user_id, name, hash, created_at)
			VALUES (?, ?, ?, ?) RETURNING id`, userID, name, hash, tx.ts(t.CreatedAt)).Scan(&t.ID)
	})
	if err != nil {
		return Token{}, wrap("create token", err)
	}
	return t, nil
}

// TokenUser finds the user of a token hash and records its use; ErrNotFound when unknown.
// The use is written at most once a minute per token.
func (s *Store) TokenUser(ctx context.Context, hash []byte) (User, Token, error) {
	var (
		u User
		t Token
	)
	err := s.reader().queryRow(ctx, `SELECT u.id, u.username, u.password_hash, u.admin, u.disabled, u.created_at,
			t.id, t.user_id, t.name, t.created_at, t.last_used_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`, hash).Scan(
		&u.ID, &u.Username, &u.PasswordHash, &u.Admin, &u.Disabled, timeScan{&u.CreatedAt},
		&t.ID, &t.UserID, &t.Name, timeScan{&t.CreatedAt}, nullTimeScan{&t.LastUsedAt})
	if err != nil {
		return User{}, Token{}, wrap("find token", err)
	}
	at := now()
	if t.LastUsedAt == nil || at.Sub(*t.LastUsedAt) >= tokenUseGranularity {
		err := s.write(ctx, func(tx db) error {
			_, err := tx.exec(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", tx.ts(at), t.ID)
			return err
		})
		switch err = wrap("record token use", err); {
		case errors.Is(err, ErrFull):
			// The use is a nicety: a full disk must not lock everyone out of reading.
			s.logger.Warn("store: token use not recorded", "err", err)
		case err != nil:
			return User{}, Token{}, err
		default:
			t.LastUsedAt = &at
		}
	}
	return u, t, nil
}

// TokenList lists a user's tokens.
func (s *Store) TokenList(ctx context.Context, userID int64) ([]Token, error) {
	out, err := queryAll(ctx, s.reader(), scanToken, "SELECT "+tokenCols+" FROM api_tokens WHERE user_id = ? ORDER BY id", userID)
	if err != nil {
		return nil, wrap("list tokens", err)
	}
	return out, nil
}

// TokenDelete removes one of a user's tokens.
func (s *Store) TokenDelete(ctx context.Context, userID, tokenID int64) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "DELETE FROM api_tokens WHERE id = ? AND user_id = ?", tokenID, userID)
		if err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
	return wrap("delete token", err)
}
