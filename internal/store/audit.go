package store

import (
	"context"
	"time"
)

// audit writes one entry of a pipeline's trigger audit log.
func audit(ctx context.Context, tx db, pipelineID int64, at time.Time, actor, action, detail string) error {
	_, err := tx.exec(ctx, `INSERT INTO webhook_audit (pipeline_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)`,
		pipelineID, tx.ts(at), actor, action, detail)
	return err
}

// AuditList returns a pipeline's trigger audit log, newest first (limit 1..500, 0 = 100).
func (s *Store) AuditList(ctx context.Context, pipelineID int64, limit int) ([]AuditEntry, error) {
	switch {
	case limit <= 0:
		limit = 100
	case limit > 500:
		limit = 500
	}
	out, err := queryAll(ctx, s.reader(), func(row scanner, e *AuditEntry) error {
		return row.Scan(&e.ID, &e.PipelineID, timeScan{&e.At}, &e.Actor, &e.Action, &e.Detail)
	}, `SELECT id, pipeline_id, at, actor, action, detail FROM webhook_audit
		WHERE pipeline_id = ? ORDER BY id DESC LIMIT ?`, pipelineID, limit)
	if err != nil {
		return nil, wrap("list webhook audit", err)
	}
	return out, nil
}
