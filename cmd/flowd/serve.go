package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowd/flowd/internal/app"
	"github.com/flowd/flowd/internal/config"
)

const serveUsage = `Usage: flowd serve [flags]

Start the flowd server: the HTTP API, the webhook endpoint, the scheduler and the local executor.
With no flags it keeps its SQLite database in ./flowd-data and listens on 127.0.0.1:8080. On an
empty database it creates the user "admin" with the password in FLOWD_ADMIN_PASSWORD, or prints
a random one once; on a database with users it ignores the variable and says so, unless given
--reset-admin-password, which sets admin's password to it at this start. Every flag can also be
set as FLOWD_<FLAG> (e.g. FLOWD_ADDR, FLOWD_DATABASE).
A SQLite database serves one server: a second serve on the same file refuses to start. Several
servers share one PostgreSQL database (--database postgres://…), each with its own --data and the
same FLOWD_SECRET_KEY; webhook rate limits and sign-in limits then hold for all of them together.
FLOWD_SECRET_KEY (64 hex characters) sets the key for secrets at rest; without it flowd keeps a
generated key in <data>/secret.key (mode 0600). /metrics answers only global admins' API tokens
and the --metrics-token, or anyone on its own --metrics-addr. SIGINT or SIGTERM stops it cleanly.

Flags:
`

// cmdServe runs `flowd serve`.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := config.Default()
	cfg.Version = binaryVersion()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked-for help goes to stdout, like every other command's
		}
	}
	applyEnv := cfg.Flags(fs, os.Getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flowd serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := applyEnv(); err != nil {
		fmt.Fprintf(stderr, "flowd serve: %v\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "flowd serve: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, logger, stdout); err != nil {
		logger.Error("flowd stopped", "err", err)
		return 1
	}
	return 0
}
