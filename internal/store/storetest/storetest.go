// Package storetest opens real, isolated flowd stores for tests: SQLite in a temporary folder,
// PostgreSQL in a fresh schema of the database named by FLOWD_TEST_DATABASE_URL.
//
// Without FLOWD_TEST_DATABASE_URL the PostgreSQL cases are skipped, unless
// FLOWD_TEST_REQUIRE_ALL=1, which turns the skip into a failure (for CI).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create and drop test schemas

	"github.com/flowd/flowd/internal/store"
)

// Environment variables read here.
const (
	// EnvDatabaseURL names the PostgreSQL server tests may use, e.g.
	// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
	EnvDatabaseURL = "FLOWD_TEST_DATABASE_URL"
	// EnvRequireAll, set to 1, fails instead of skipping tests whose database is not configured.
	EnvRequireAll = "FLOWD_TEST_REQUIRE_ALL"
)

// DSN returns the DSN of a new, empty database of dialect ("sqlite" or "postgres") that lives
// as long as the test: a file in t.TempDir(), or a PostgreSQL schema t_<random> (reached through
// the DSN's search_path) dropped at cleanup.
func DSN(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "flowd.db")
	case "postgres":
		return postgresDSN(t)
	}
	t.Fatalf("storetest: unknown dialect %q: use sqlite or postgres", dialect)
	return ""
}

// Open opens a store of dialect on a database of its own (see DSN), closed at cleanup. Its
// log goes to the test's output.
func Open(t testing.TB, dialect string) *store.Store {
	t.Helper()
	return OpenAt(t, DSN(t, dialect))
}

// OpenAt opens a store on dsn (from DSN), closed at cleanup: opened twice on one DSN, two
// servers sharing a database. Its log goes to the test's output.
func OpenAt(t testing.TB, dsn string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, Logger(t))
	if err != nil {
		t.Fatalf("storetest: open a store on %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Logger is a logger that writes to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func postgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		if os.Getenv(EnvRequireAll) == "1" {
			t.Fatalf("storetest: %s is not set and %s=1: set it to a PostgreSQL URL, e.g. "+
				"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", EnvDatabaseURL, EnvRequireAll)
		}
		t.Skipf("storetest: PostgreSQL tests skipped: set %s to a PostgreSQL URL to run them", EnvDatabaseURL)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvDatabaseURL, err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: connect to PostgreSQL: %v", err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
