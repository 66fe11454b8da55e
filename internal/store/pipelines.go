package store

import (
	"context"
	"database/sql"
	"time"
)

// pipelineSelect reads a pipeline joined with one of its revisions (pr); UpdatedAt is when that
// revision was written.
const pipelineSelect = `SELECT p.id, p.name, pr.revision, pr.source, pr.secrets, p.created_by, p.created_at, pr.created_at, COALESCE(p.trusted_by, '')
	FROM pipelines p JOIN pipeline_revisions pr ON pr.pipeline_id = p.id`

func scanPipeline(row interface{ Scan(...any) error }, p *Pipeline) error {
	return row.Scan(&p.ID, &p.Name, &p.Revision, &p.Source, &p.Secrets, &p.CreatedBy,
		timeScan{&p.CreatedAt}, timeScan{&p.UpdatedAt}, &p.TrustedBy)
}

// username is the name of user id, for the created_by columns; ErrNotFound when there is none.
func username(ctx context.Context, tx db, id int64) (string, error) {
	var name string
	err := tx.queryRow(ctx, "SELECT username FROM users WHERE id = ?", id).Scan(&name)
	return name, err
}

// PipelineCreate stores revision 1 and makes the creator the pipeline's admin, in one
// transaction; ErrConflict when the name is taken.
func (s *Store) PipelineCreate(ctx context.Context, name, source string, secrets []byte, creatorID int64) (Pipeline, error) {
	return s.PipelineCreateTrust(ctx, name, source, secrets, creatorID, false)
}

// PipelineCreateTrust is PipelineCreate that, with trusted, also marks the pipeline trusted by
// its creator (a global admin: the caller checks).
func (s *Store) PipelineCreateTrust(ctx context.Context, name, source string, secrets []byte, creatorID int64, trusted bool) (Pipeline, error) {
	at := now()
	p := Pipeline{Name: name, Revision: 1, Source: source, Secrets: secrets, CreatedAt: at, UpdatedAt: at}
	err := s.write(ctx, func(tx db) error {
		var err error
		if p.CreatedBy, err = username(ctx, tx, creatorID); err != nil {
			return err
		}
		var trustedBy *string
		if trusted {
			trustedBy, p.TrustedBy = &p.CreatedBy, p.CreatedBy
		}
		err = tx.queryRow(ctx, `INSERT INTO pipelines (name, revision, created_by, created_at, updated_at, trusted_by)
			VALUES (?, 1, ?, ?, ?, ?) RETURNING id`, name, p.CreatedBy, tx.ts(at), tx.ts(at), trustedBy).Scan(&p.ID)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO pipeline_revisions (pipeline_id, revision, source, secrets, created_by, created_at)
			VALUES (?, 1, ?, ?, ?, ?)`, p.ID, source, secrets, p.CreatedBy, tx.ts(at)); err != nil {
			return err
		}
		_, err = tx.exec(ctx, "INSERT INTO members (pipeline_id, user_id, role) VALUES (?, ?, 'admin')", p.ID, creatorID)
		return err
	})
	if err != nil {
		return Pipeline{}, wrap("create pipeline", err)
	}
	return p, nil
}

// PipelineUpdate stores a new revision. CreatedBy stays the pipeline's creator; the revision
// records userID's name as its author. ErrNotFound when the pipeline or the user is gone.
func (s *Store) PipelineUpdate(ctx context.Context, id int64, source string, secrets []byte, userID int64) (Pipeline, error) {
	return s.PipelineUpdateTrust(ctx, id, source, secrets, userID, true)
}

// PipelineUpdateTrust is PipelineUpdate that, without keepTrust, also clears the pipeline's
// trusted mark in the same transaction (a revision saved by someone who is not a global admin).
func (s *Store) PipelineUpdateTrust(ctx context.Context, id int64, source string, secrets []byte, userID int64, keepTrust bool) (Pipeline, error) {
	var p Pipeline
	err := s.write(ctx, func(tx db) error {
		by, err := username(ctx, tx, userID)
		if err != nil {
			return err
		}
		var rev int64
		if err := tx.queryRow(ctx, "SELECT revision FROM pipelines WHERE id = ?"+tx.forUpdate(), id).Scan(&rev); err != nil {
			return err
		}
		at := now()
		if _, err := tx.exec(ctx, `INSERT INTO pipeline_revisions (pipeline_id, revision, source, secrets, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, id, rev+1, source, secrets, by, tx.ts(at)); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE pipelines SET revision = ?, updated_at = ? WHERE id = ? AND revision = ?",
			rev+1, tx.ts(at), id, rev); err != nil {
			return err
		}
		if !keepTrust {
			if _, err := tx.exec(ctx, "UPDATE pipelines SET trusted_by = NULL WHERE id = ?", id); err != nil {
				return err
			}
		}
		return scanPipeline(tx.queryRow(ctx, pipelineSelect+" AND pr.revision = p.revision WHERE p.id = ?", id), &p)
	})
	if err != nil {
		return Pipeline{}, wrap("update pipeline", err)
	}
	return p, nil
}

// PipelineGet returns a pipeline at its newest revision.
func (s *Store) PipelineGet(ctx context.Context, name string) (Pipeline, error) {
	var p Pipeline
	err := scanPipeline(s.reader().queryRow(ctx, pipelineSelect+" AND pr.revision = p.revision WHERE p.name = ?", name), &p)
	if err != nil {
		return Pipeline{}, wrap("get pipeline", err)
	}
	return p, nil
}

// PipelineRevision returns a pipeline as it was at a revision.
func (s *Store) PipelineRevision(ctx context.Context, pipelineID, revision int64) (Pipeline, error) {
	var p Pipeline
	err := scanPipeline(s.reader().queryRow(ctx, pipelineSelect+" AND pr.revision = ? WHERE p.id = ?", revision, pipelineID), &p)
	if err != nil {
		return Pipeline{}, wrap("get pipeline revision", err)
	}
	return p, nil
}

// PipelineList lists pipelines by name with their newest run: all of them, or those userID is
// a member of. It is one query.
func (s *Store) PipelineList(ctx context.Context, userID int64, all bool) ([]PipelineSummary, error) {
	q := `SELECT p.id, p.name, pr.revision, pr.source, pr.secrets, p.created_by, p.created_at, pr.created_at, COALESCE(p.trusted_by, ''), ` + runColsNullable + `
		FROM pipelines p
		JOIN pipeline_revisions pr ON pr.pipeline_id = p.id AND pr.revision = p.revision
		LEFT JOIN runs r ON r.pipeline_id = p.id
			AND r.number = (SELECT MAX(r2.number) FROM runs r2 WHERE r2.pipeline_id = p.id)`
	var args []any
	if !all {
		q += " WHERE EXISTS (SELECT 1 FROM members m WHERE m.pipeline_id = p.id AND m.user_id = ?)"
		args = append(args, userID)
	}
	q += " ORDER BY p.name"
	rows, err := s.reader().query(ctx, q, args...)
	if err != nil {
		return nil, wrap("list pipelines", err)
	}
	defer rows.Close()
	var out []PipelineSummary
	for rows.Next() {
		var (
			ps PipelineSummary
			rs runScan
		)
		p := &ps.Pipeline
		dest := append([]any{&p.ID, &p.Name, &p.Revision, &p.Source, &p.Secrets, &p.CreatedBy,
			timeScan{&p.CreatedAt}, timeScan{&p.UpdatedAt}, &p.TrustedBy}, rs.dest()...)
		if err := rows.Scan(dest...); err != nil {
			return nil, wrap("list pipelines", err)
		}
		if rs.id.Valid {
			r := rs.run()
			r.Pipeline = p.Name
			ps.LastRun = &r
		}
		out = append(out, ps)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list pipelines", err)
	}
	if err := s.activeRuns(ctx, out); err != nil {
		return nil, wrap("list pipelines", err)
	}
	return out, nil
}

// PipelineDelete removes a pipeline with its revisions, members, runs and logs.
func (s *Store) PipelineDelete(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "DELETE FROM pipelines WHERE id = ?", id)
		if err == nil && n == 0 {
			return sql.ErrNoRows
		}
		return err
	})
	return wrap("delete pipeline", err)
}

// PipelineTrust marks a pipeline trusted by global admin userID, or (trusted false) untrusted;
// ErrNotFound when the pipeline or the user is gone.
func (s *Store) PipelineTrust(ctx context.Context, id, userID int64, trusted bool) (Pipeline, error) {
	var p Pipeline
	err := s.write(ctx, func(tx db) error {
		by, err := username(ctx, tx, userID)
		if err != nil {
			return err
		}
		var trustedBy *string
		if trusted {
			trustedBy = &by
		}
		n, err := tx.execN(ctx, "UPDATE pipelines SET trusted_by = ? WHERE id = ?", trustedBy, id)
		if err != nil {
			return err
		}
		if n != 1 {
			return sql.ErrNoRows
		}
		return scanPipeline(tx.queryRow(ctx, pipelineSelect+" AND pr.revision = p.revision WHERE p.id = ?", id), &p)
	})
	if err != nil {
		return Pipeline{}, wrap("trust pipeline", err)
	}
	return p, nil
}

// PipelineRevisionInfo is one revision of a pipeline without its text, for lists.
type PipelineRevisionInfo struct {
	Revision  int64
	CreatedBy string // who saved it
	CreatedAt time.Time
}

// PipelineRevisionList lists a pipeline's revisions newest first: at most limit (1 to 200)
// of them, older than revision before (0 = from the newest).
func (s *Store) PipelineRevisionList(ctx context.Context, pipelineID int64, limit int, before int64) ([]PipelineRevisionInfo, error) {
	limit = min(max(limit, 1), 200)
	q, args := "SELECT revision, created_by, created_at FROM pipeline_revisions WHERE pipeline_id = ?", []any{pipelineID}
	if before > 0 {
		q, args = q+" AND revision < ?", append(args, before)
	}
	q, args = q+" ORDER BY revision DESC LIMIT ?", append(args, limit)
	out, err := queryAll(ctx, s.reader(), func(row scanner, r *PipelineRevisionInfo) error {
		return row.Scan(&r.Revision, &r.CreatedBy, timeScan{&r.CreatedAt})
	}, q, args...)
	if err != nil {
		return nil, wrap("list pipeline revisions", err)
	}
	return out, nil
}
