package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// webhookSelect reads a trigger with its pipeline's name; scanWebhook receives it.
const webhookSelect = `SELECT w.pipeline_id, p.name, w.enabled, w.token_hash, w.token_sealed, w.secret_sealed,
		w.require_timestamp, w.owner_id, w.owner_name, w.enabled_at, w.updated_at
	FROM webhook_triggers w JOIN pipelines p ON p.id = w.pipeline_id`

func scanWebhook(row interface{ Scan(...any) error }) (WebhookTrigger, error) {
	var (
		w     WebhookTrigger
		owner sql.NullInt64
	)
	err := row.Scan(&w.PipelineID, &w.Pipeline, &w.Enabled, &w.TokenHash, &w.TokenSealed, &w.SecretSealed,
		&w.RequireTimestamp, &owner, &w.Owner, nullTimeScan{&w.EnabledAt}, timeScan{&w.UpdatedAt})
	w.OwnerID = owner.Int64
	return w, err
}

// WebhookGet returns a pipeline's trigger; ErrNotFound when it was never enabled.
func (s *Store) WebhookGet(ctx context.Context, pipelineID int64) (WebhookTrigger, error) {
	w, err := scanWebhook(s.reader().queryRow(ctx, webhookSelect+" WHERE w.pipeline_id = ?", pipelineID))
	if err != nil {
		return WebhookTrigger{}, wrap("get webhook trigger", err)
	}
	return w, nil
}

// WebhookByTokenHash finds the trigger of a token (enabled or not); ErrNotFound when none.
func (s *Store) WebhookByTokenHash(ctx context.Context, hash []byte) (WebhookTrigger, error) {
	if len(hash) == 0 {
		return WebhookTrigger{}, wrap("find webhook trigger", sql.ErrNoRows)
	}
	w, err := scanWebhook(s.reader().queryRow(ctx, webhookSelect+" WHERE w.token_hash = ?", hash))
	if err != nil {
		return WebhookTrigger{}, wrap("find webhook trigger", err)
	}
	return w, nil
}

// WebhookEnable enables the trigger (creating it on first use) with p.OwnerID as owner and now as
// enabled_at, and writes an "enable" audit entry (and a "secret" one when the secret changes), in
// one transaction.
//
// ErrNotFound when the pipeline or the owner does not exist. The first enable needs
// p.TokenHash and p.TokenSealed; later ones ignore them and keep the URL.
func (s *Store) WebhookEnable(ctx context.Context, p WebhookEnable) (WebhookTrigger, error) {
	if p.SetSecret && len(p.SecretSealed) == 0 {
		p.SecretSealed = nil // an empty secret clears it too
	}
	var out WebhookTrigger
	err := s.write(ctx, func(tx db) error {
		owner, err := username(ctx, tx, p.OwnerID)
		if err != nil {
			return fmt.Errorf("owner %d: %w", p.OwnerID, err)
		}
		exists, err := lockWebhook(ctx, tx, p.PipelineID)
		if err != nil {
			return err
		}
		at := now()
		if !exists {
			if len(p.TokenHash) == 0 || len(p.TokenSealed) == 0 {
				return errors.New("first enable needs a token hash and a sealed token")
			}
			var secret []byte
			if p.SetSecret {
				secret = p.SecretSealed
			}
			if _, err := tx.exec(ctx, `INSERT INTO webhook_triggers (pipeline_id, enabled, token_hash, token_sealed,
					secret_sealed, require_timestamp, owner_id, owner_name, enabled_at, updated_at)
				VALUES (?, TRUE, ?, ?, ?, ?, ?, ?, ?, ?)`,
				p.PipelineID, p.TokenHash, p.TokenSealed, secret, p.RequireTimestamp != nil && *p.RequireTimestamp,
				p.OwnerID, owner, tx.ts(at), tx.ts(at)); err != nil {
				return err
			}
		} else {
			q := "UPDATE webhook_triggers SET enabled = TRUE, owner_id = ?, owner_name = ?, enabled_at = ?, updated_at = ?"
			args := []any{p.OwnerID, owner, tx.ts(at), tx.ts(at)}
			if p.SetSecret {
				q, args = q+", secret_sealed = ?", append(args, p.SecretSealed)
			}
			if p.RequireTimestamp != nil {
				q, args = q+", require_timestamp = ?", append(args, *p.RequireTimestamp)
			}
			if _, err := tx.exec(ctx, q+" WHERE pipeline_id = ?", append(args, p.PipelineID)...); err != nil {
				return err
			}
		}
		if err := audit(ctx, tx, p.PipelineID, at, owner, "enable", "owner "+owner); err != nil {
			return err
		}
		if p.SetSecret {
			detail := "set"
			if p.SecretSealed == nil {
				detail = "removed"
			}
			if err := audit(ctx, tx, p.PipelineID, at, owner, "secret", detail); err != nil {
				return err
			}
		}
		if p.RequireTimestamp != nil {
			detail := "X-Flowd-Timestamp not required"
			if *p.RequireTimestamp {
				detail = "X-Flowd-Timestamp required"
			}
			if err := audit(ctx, tx, p.PipelineID, at, owner, "timestamp", detail); err != nil {
				return err
			}
		}
		out, err = scanWebhook(tx.queryRow(ctx, webhookSelect+" WHERE w.pipeline_id = ?", p.PipelineID))
		return err
	})
	if err != nil {
		return WebhookTrigger{}, wrap("enable webhook trigger", err)
	}
	return out, nil
}

// WebhookDisable disables the trigger and writes a "disable" audit entry; ErrNotFound when it was
// never enabled. The URL, the secret and the owner are kept; EnabledAt becomes nil.
func (s *Store) WebhookDisable(ctx context.Context, pipelineID, actorID int64) (WebhookTrigger, error) {
	out, err := s.changeWebhook(ctx, pipelineID, actorID, "disable", "",
		"UPDATE webhook_triggers SET enabled = FALSE, enabled_at = NULL, updated_at = ? WHERE pipeline_id = ?")
	if err != nil {
		return WebhookTrigger{}, wrap("disable webhook trigger", err)
	}
	return out, nil
}

// WebhookRotate gives the trigger a new token (the old one stops working at once) and writes a
// "rotate" audit entry; ErrNotFound when it was never enabled.
func (s *Store) WebhookRotate(ctx context.Context, pipelineID, actorID int64, tokenHash, tokenSealed []byte) (WebhookTrigger, error) {
	if len(tokenHash) == 0 || len(tokenSealed) == 0 {
		return WebhookTrigger{}, errors.New("store: rotate webhook trigger: empty token hash or sealed token")
	}
	out, err := s.changeWebhook(ctx, pipelineID, actorID, "rotate", "new URL",
		"UPDATE webhook_triggers SET token_hash = ?, token_sealed = ?, updated_at = ? WHERE pipeline_id = ?",
		tokenHash, tokenSealed)
	if err != nil {
		return WebhookTrigger{}, wrap("rotate webhook trigger", err)
	}
	return out, nil
}

// changeWebhook runs update (whose last two parameters are updated_at and pipeline_id, after
// args) on an existing trigger and audits it as actorID's action, in one transaction.
func (s *Store) changeWebhook(ctx context.Context, pipelineID, actorID int64, action, detail, update string, args ...any) (WebhookTrigger, error) {
	var out WebhookTrigger
	err := s.write(ctx, func(tx db) error {
		actor, err := username(ctx, tx, actorID)
		if err != nil {
			return fmt.Errorf("actor %d: %w", actorID, err)
		}
		exists, err := lockWebhook(ctx, tx, pipelineID)
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("pipeline %d has no webhook trigger: %w", pipelineID, ErrNotFound)
		}
		at := now()
		if _, err := tx.exec(ctx, update, append(args, tx.ts(at), pipelineID)...); err != nil {
			return err
		}
		if err := audit(ctx, tx, pipelineID, at, actor, action, detail); err != nil {
			return err
		}
		out, err = scanWebhook(tx.queryRow(ctx, webhookSelect+" WHERE w.pipeline_id = ?", pipelineID))
		return err
	})
	return out, err
}

// lockWebhook locks the pipeline row (on PostgreSQL, so changes to one trigger queue; lock order:
// pipeline first) and says whether the pipeline has a trigger. ErrNotFound when the pipeline is
// gone.
func lockWebhook(ctx context.Context, tx db, pipelineID int64) (bool, error) {
	var one int
	if err := tx.queryRow(ctx, "SELECT 1 FROM pipelines WHERE id = ?"+tx.forUpdate(), pipelineID).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("pipeline %d: %w", pipelineID, ErrNotFound)
		}
		return false, err
	}
	var n int
	err := tx.queryRow(ctx, "SELECT COUNT(*) FROM webhook_triggers WHERE pipeline_id = ?", pipelineID).Scan(&n)
	return n > 0, err
}

// basisHolds selects one row when a WebhookBasis (basisArgs) still holds of the trigger of a
// pipeline: enabled, with the same token and unchanged since; its owner the same user, not
// disabled, with the same name, and a global admin still or with the same role on the
// pipeline; the pipeline at the same revision and trust. Every look-up is by primary key.
const basisHolds = `SELECT 1 FROM webhook_triggers w
	JOIN pipelines p ON p.id = w.pipeline_id
	JOIN users u ON u.id = w.owner_id
	LEFT JOIN members m ON m.pipeline_id = w.pipeline_id AND m.user_id = u.id
	WHERE w.pipeline_id = ? AND w.enabled AND w.token_hash = ? AND w.updated_at = ? AND w.owner_id = ?
		AND u.username = ? AND NOT u.disabled AND u.admin = ? AND (u.admin OR m.role = ?)
		AND p.revision = ? AND COALESCE(p.trusted_by, '') = ?`

// basisArgs are basisHolds' arguments for b and the trigger of pipelineID.
func basisArgs(tx db, pipelineID int64, b *WebhookBasis) []any {
	return []any{pipelineID, b.TokenHash, tx.ts(b.TriggerUpdatedAt), b.OwnerID,
		b.OwnerName, b.OwnerAdmin, b.OwnerRole, b.Revision, b.TrustedBy}
}

// checkBasis is ErrStale unless b holds of the trigger of pipelineID, inside tx.
func checkBasis(ctx context.Context, tx db, pipelineID int64, b *WebhookBasis) error {
	var one int
	err := tx.queryRow(ctx, basisHolds, basisArgs(tx, pipelineID, b)...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrStale
	}
	return err
}
