package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MemberSet gives a user a role on a pipeline (insert or update).
func (s *Store) MemberSet(ctx context.Context, pipelineID, userID int64, role string) error {
	switch role {
	case "viewer", "developer", "admin":
	default:
		return fmt.Errorf("store: set member: unknown role %q: use viewer, developer or admin", role)
	}
	err := s.write(ctx, func(tx db) error {
		_, err := tx.exec(ctx, `INSERT INTO members (pipeline_id, user_id, role) VALUES (?, ?, ?)
			ON CONFLICT (pipeline_id, user_id) DO UPDATE SET role = excluded.role`, pipelineID, userID, role)
		return err
	})
	return wrap("set member", err)
}

// MemberDelete removes a membership; ErrNotFound when there is none.
func (s *Store) MemberDelete(ctx context.Context, pipelineID, userID int64) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "DELETE FROM members WHERE pipeline_id = ? AND user_id = ?", pipelineID, userID)
		if err == nil && n == 0 {
			return sql.ErrNoRows
		}
		return err
	})
	return wrap("delete member", err)
}

// MemberList lists a pipeline's members by name.
func (s *Store) MemberList(ctx context.Context, pipelineID int64) ([]Member, error) {
	out, err := queryAll(ctx, s.reader(), func(row scanner, m *Member) error {
		return row.Scan(&m.UserID, &m.Username, &m.Role)
	}, `SELECT u.id, u.username, m.role FROM members m
		JOIN users u ON u.id = m.user_id WHERE m.pipeline_id = ? ORDER BY u.username`, pipelineID)
	if err != nil {
		return nil, wrap("list members", err)
	}
	return out, nil
}

// MemberRole is a user's role on a pipeline, "" when not a member.
func (s *Store) MemberRole(ctx context.Context, pipelineID, userID int64) (string, error) {
	var role string
	err := s.reader().queryRow(ctx, "SELECT role FROM members WHERE pipeline_id = ? AND user_id = ?",
		pipelineID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", wrap("get member role", err)
	}
	return role, nil
}
