package store

// STUBS of the webhook part of the contract: every one is replaced by its real body in
// webhooks.go, audit.go or deliveries.go, and this file deleted.

import (
	"context"
	"time"
)

// WebhookGet returns a pipeline's trigger; ErrNotFound when it was never enabled.
func (s *Store) WebhookGet(ctx context.Context, pipelineID int64) (WebhookTrigger, error) {
	panic("stub")
}

// WebhookByTokenHash finds the trigger of a token (enabled or not); ErrNotFound when none.
func (s *Store) WebhookByTokenHash(ctx context.Context, hash []byte) (WebhookTrigger, error) {
	panic("stub")
}

// WebhookEnable enables the trigger (creating it on first use) with p.OwnerID as owner and now as
// enabled_at, and writes an "enable" audit entry (and a "secret" one when the secret changes), in
// one transaction.
func (s *Store) WebhookEnable(ctx context.Context, p WebhookEnable) (WebhookTrigger, error) {
	panic("stub")
}

// WebhookDisable disables the trigger and writes a "disable" audit entry; ErrNotFound when it was
// never enabled.
func (s *Store) WebhookDisable(ctx context.Context, pipelineID, actorID int64) (WebhookTrigger, error) {
	panic("stub")
}

// WebhookRotate gives the trigger a new token (the old one stops working at once) and writes a
// "rotate" audit entry; ErrNotFound when it was never enabled.
func (s *Store) WebhookRotate(ctx context.Context, pipelineID, actorID int64, tokenHash, tokenSealed []byte) (WebhookTrigger, error) {
	panic("stub")
}

// AuditList returns a pipeline's trigger audit log, newest first (limit 1..500, 0 = 100).
func (s *Store) AuditList(ctx context.Context, pipelineID int64, limit int) ([]AuditEntry, error) {
	panic("stub")
}

// DeliveryRecord stores a delivery and, when rec.NewRun is set, the queued run it starts, in ONE
// transaction (a crash after it returns loses neither). With Delivery.IdempotencyKey set: when the
// same pipeline already recorded that key within IdempotencyWindow, no run is created; the new
// delivery is stored as a replay (ReplayOf = the first delivery, with the first's StatusCode,
// ErrorCode, Response and RunID) and replayed is true. Safe when requests with one key race
// (also across servers on PostgreSQL): exactly one of them starts a run.
func (s *Store) DeliveryRecord(ctx context.Context, rec DeliveryRecord) (d Delivery, replayed bool, err error) {
	panic("stub")
}

// DeliveryGet returns one delivery with headers and body.
func (s *Store) DeliveryGet(ctx context.Context, id int64) (Delivery, error) { panic("stub") }

// DeliveryList returns a pipeline's deliveries newest first, without Headers and Body (limit
// 1..200, 0 = 50; beforeID 0 = from the newest).
func (s *Store) DeliveryList(ctx context.Context, pipelineID int64, limit int, beforeID int64) ([]Delivery, error) {
	panic("stub")
}

// DeliveryPrune keeps at most keep deliveries per pipeline and none older than maxAge, and
// drops idempotency keys older than IdempotencyWindow. It returns how many deliveries it removed.
func (s *Store) DeliveryPrune(ctx context.Context, keep int, maxAge time.Duration) (int64, error) {
	panic("stub")
}
