package trigger

import (
	"context"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/store"
)

// What a delivery's first steps read of the store — the trigger by its token, its owner's
// standing, the pipeline — rarely changes between deliveries to one URL, and reading it was
// most of a delivery's round trips. So it is kept per token (a basis) for basisTTL, and the
// deliveries that find it read none of it again. Each one that is stored carries the basis
// to the store (store.WebhookBasis), which stores it only if every fact still holds, checked
// in the statement or transaction that stores it: the owner's right is still checked at every
// delivery, at the moment it is stored. When one no longer holds (the trigger was disabled or
// rotated, the owner disabled or demoted, the pipeline edited), the store stores nothing, the
// basis is dropped and the delivery is decided again from what the store holds now, as if
// nothing had been kept.
//
// Only an answer that stores nothing can rest on a basis no newer than basisTTL without that
// check: a rate-limited request's 429.

// basisTTL is how long a basis serves deliveries before it is read again.
const basisTTL = 5 * time.Second

// maxBases bounds the kept bases: the URLs that received deliveries lately.
const maxBases = 1024

// basis is what the token, permission and payload steps read for one trigger.
type basis struct {
	trig  store.WebhookTrigger
	owner ownerCheck // Problem is "": only bases a run may start from are kept
	pipe  store.Pipeline
	until time.Time
}

// holds is the store's form of b, for DeliveryRecord to check.
func (b *basis) holds() *store.WebhookBasis {
	return &store.WebhookBasis{
		TokenHash:        b.trig.TokenHash,
		TriggerUpdatedAt: b.trig.UpdatedAt,
		OwnerID:          b.owner.User.ID,
		OwnerName:        b.owner.User.Username,
		OwnerAdmin:       b.owner.User.Admin,
		OwnerRole:        string(b.owner.Role),
		Revision:         b.pipe.Revision,
		TrustedBy:        b.pipe.TrustedBy,
	}
}

// basisCache holds bases by token hash. The zero value is ready to use.
type basisCache struct {
	mu sync.Mutex
	m  map[string]*basis
}

// get returns the live basis of a token hash, or nil.
func (c *basisCache) get(hash []byte, now time.Time) *basis {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.m[string(hash)]
	if b == nil || now.After(b.until) {
		return nil
	}
	return b
}

// put keeps b for its token hash until b.until.
func (c *basisCache) put(b *basis) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*basis{}
	}
	if len(c.m) >= maxBases {
		now := time.Now()
		for k, old := range c.m {
			if now.After(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // all live: drop any one
			if len(c.m) < maxBases {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[string(b.trig.TokenHash)] = b
}

// drop forgets the basis of a token hash.
func (c *basisCache) drop(hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(hash))
}

// findTrigger is the token step's look-up of the trigger of the URL's token: a kept basis
// (which then serves the permission and payload steps too), or the store's trigger.
func (w *Webhooks) findTrigger(ctx context.Context, d *delivery) (store.WebhookTrigger, error) {
	hash := HashWebhookToken(d.in.Token)
	if !d.fresh {
		if b := w.bases.get(hash, time.Now()); b != nil {
			d.basis = b
			return b.trig, nil
		}
	}
	return w.Store.WebhookByTokenHash(ctx, hash)
}

// Find is the trigger of a webhook URL's token for what happens before the request is read
// (the API's admission): the kept basis's when the URL had a delivery within basisTTL, else the
// store's; store.ErrNotFound when no trigger has the token. A kept one may have been disabled
// or rotated since: Deliver finds that out before it stores anything or answers.
func (w *Webhooks) Find(ctx context.Context, token string) (store.WebhookTrigger, error) {
	hash := HashWebhookToken(token)
	if b := w.bases.get(hash, time.Now()); b != nil {
		return b.trig, nil
	}
	return w.Store.WebhookByTokenHash(ctx, hash)
}

// ownerOf is the permission step's check of the trigger's owner: the kept one, or the store's.
func (w *Webhooks) ownerOf(ctx context.Context, d *delivery) (ownerCheck, error) {
	if d.basis != nil {
		return d.basis.owner, nil
	}
	return w.checkOwner(ctx, d.trig)
}

// pipelineOf is the pipeline as the delivery decides on it: the kept one, or the store's.
func (w *Webhooks) pipelineOf(ctx context.Context, d *delivery) (store.Pipeline, error) {
	if d.basis != nil {
		return d.basis.pipe, nil
	}
	return w.Store.PipelineGet(ctx, d.trig.Pipeline)
}

// keepBasis keeps what a delivery decided from fresh reads, once it is stored, when a run may
// start from it: an enabled trigger at its URL, an owner with the right, the pipeline read.
func (w *Webhooks) keepBasis(d *delivery) {
	if d.basis != nil || d.in.Token == "" || !d.trig.Enabled || d.owner.Problem != "" || d.owner.User.ID == 0 || d.pipe.ID == 0 {
		return
	}
	w.bases.put(&basis{trig: d.trig, owner: d.owner, pipe: d.pipe, until: time.Now().Add(basisTTL)})
}
