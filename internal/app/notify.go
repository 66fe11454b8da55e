package app

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/notify"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

// notifyBackoffEnv is a test hook: a duration (e.g. 200ms) that replaces the first retry
// delay of run notifications and commit statuses (10 s) and the cap (10 min) and makes the outbox be read that
// often, so a test sees a receiver come back without waiting minutes.
const notifyBackoffEnv = "FLOWD_TEST_NOTIFY_BACKOFF"

// runNotifications sends run notifications and commit statuses until ctx ends (see
// notify.Notifier). Every server runs it; the store's claims keep two from sending the same
// attempt at once.
func runNotifications(ctx context.Context, st *store.Store, box *secret.Box, m *metrics.Metrics, externalURL, version string, logger *slog.Logger) {
	n := &notify.Notifier{Store: st, Box: box, ExternalURL: externalURL, Version: version, Logger: logger, Metrics: m,
		Client: &http.Client{Timeout: notify.DefaultTimeout}}
	every := time.Duration(0)
	if v := os.Getenv(notifyBackoffEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			logger.Warn("run notifications retry on a test's backoff", "backoff", d)
			n.Backoff, n.MaxBackoff, every = d, d, d
		}
	}
	n.Run(ctx, every)
}
