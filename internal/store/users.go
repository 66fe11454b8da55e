package store

import (
	"context"
	"strings"
)

const userCols = "id, username, password_hash, admin, disabled, created_at"

// scanUser reads the columns of userCols.
func scanUser(row interface{ Scan(...any) error }, u *User) error {
	return row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Admin, &u.Disabled, timeScan{&u.CreatedAt})
}

// UserCreate adds a user; ErrConflict when the name is taken.
func (s *Store) UserCreate(ctx context.Context, username, passwordHash string, admin bool) (User, error) {
	u := User{Username: username, PasswordHash: passwordHash, Admin: admin, CreatedAt: now()}
	err := s.write(ctx, func(tx db) error {
		return tx.queryRow(ctx, `INSERT INTO users (username, password_hash, admin, disabled, created_at)
			VALUES (?, ?, ?, FALSE, ?) RETURNING id`,
			username, passwordHash, admin, tx.ts(u.CreatedAt)).Scan(&u.ID)
	})
	if err != nil {
		return User{}, wrap("create user", err)
	}
	return u, nil
}

// UserGet finds a user by name.
func (s *Store) UserGet(ctx context.Context, username string) (User, error) {
	var u User
	err := scanUser(s.reader().queryRow(ctx, "SELECT "+userCols+" FROM users WHERE username = ?", username), &u)
	if err != nil {
		return User{}, wrap("get user", err)
	}
	return u, nil
}

// UserGetByID finds a user by id.
func (s *Store) UserGetByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := scanUser(s.reader().queryRow(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id), &u)
	if err != nil {
		return User{}, wrap("get user", err)
	}
	return u, nil
}

// UserList lists users by name.
func (s *Store) UserList(ctx context.Context) ([]User, error) {
	out, err := queryAll(ctx, s.reader(), scanUser, "SELECT "+userCols+" FROM users ORDER BY username")
	if err != nil {
		return nil, wrap("list users", err)
	}
	return out, nil
}

// UserUpdate changes a user. A new password also ends the user's web sessions, in the same
// transaction, so a stolen session does not outlive a password change (API tokens stay: they
// are revoked one by one).
func (s *Store) UserUpdate(ctx context.Context, id int64, u UserUpdate) (User, error) {
	var (
		sets []string
		args []any
	)
	if u.PasswordHash != nil {
		sets, args = append(sets, "password_hash = ?"), append(args, *u.PasswordHash)
	}
	if u.Admin != nil {
		sets, args = append(sets, "admin = ?"), append(args, *u.Admin)
	}
	if u.Disabled != nil {
		sets, args = append(sets, "disabled = ?"), append(args, *u.Disabled)
	}
	if len(sets) == 0 {
		return s.UserGetByID(ctx, id)
	}
	var out User
	err := s.write(ctx, func(tx db) error {
		if err := scanUser(tx.queryRow(ctx, "UPDATE users SET "+strings.Join(sets, ", ")+
			" WHERE id = ? RETURNING "+userCols, append(args, id)...), &out); err != nil {
			return err
		}
		if u.PasswordHash == nil {
			return nil
		}
		_, err := tx.exec(ctx, "DELETE FROM sessions WHERE user_id = ?", id)
		return err
	})
	if err != nil {
		return User{}, wrap("update user", err)
	}
	return out, nil
}

// UserDelete removes a user, their tokens and memberships (runs keep the name).
func (s *Store) UserDelete(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "DELETE FROM users WHERE id = ?", id)
		if err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
	return wrap("delete user", err)
}

// UserCount counts users.
func (s *Store) UserCount(ctx context.Context) (int, error) {
	var n int
	if err := s.reader().queryRow(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
		return 0, wrap("count users", err)
	}
	return n, nil
}
