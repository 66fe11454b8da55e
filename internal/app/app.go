// Package app wires flowd together: it builds the store, the services and the HTTP server from a
// Config, runs them under one errgroup and stops them in order.
package app

import (
	"context"
	"io"
	"log/slog"

	"github.com/flowd/flowd/internal/config"
)

// Run starts flowd and blocks until ctx is done, then shuts down cleanly. out receives the
// one-time messages for the person who started it (the generated admin password, the address).
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger, out io.Writer) error {
	panic("stub")
}
