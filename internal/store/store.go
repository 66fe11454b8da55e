// Package store is flowd's one store: users, tokens, pipelines and their revisions, members,
// runs with their jobs and steps, and run logs, over SQLite (embedded, the default) or
// PostgreSQL (when several servers share the work).
//
// Both databases go through database/sql: SQLite through modernc.org/sqlite, PostgreSQL through
// pgx's stdlib driver. Every query is written once with ? placeholders and rebound to $n for
// PostgreSQL; where the dialects differ (row locks, SKIP LOCKED, advisory locks) the code
// branches in plain sight. Schema changes are numbered migrations embedded per database and
// applied by Open.
//
// On SQLite the store keeps two pools: one writer connection (BEGIN IMMEDIATE, so writers never
// deadlock on lock upgrades) and several read-only connections; WAL lets readers run beside the
// writer. Every write goes through Store.write, the one place a later change can batch several
// callers' writes into one commit.
//
// Status changes are guarded UPDATEs (… WHERE id = ? AND status IN (allowed)) that check the
// rows they touched; a change that finds a record in the wrong state fails with ErrConflict
// wrapping a *run.ErrTransition.
//
// Lock order on PostgreSQL, to keep transactions from deadlocking: pipeline row, then run row
// (FOR NO KEY UPDATE), then its jobs, then their steps. JobClaim never waits: it locks the job
// and its run with SKIP LOCKED.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// The dialects Store.Dialect reports.
const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Store is flowd's one store over SQLite or PostgreSQL. It is safe for concurrent use.
type Store struct {
	pg     bool
	w      *sql.DB // writes and read-write transactions: one connection on SQLite
	r      *sql.DB // reads that write nothing: a read-only pool on SQLite, w on PostgreSQL
	logger *slog.Logger
}

// Open connects to dsn ("sqlite:PATH" or "postgres://…"), applies the migrations and returns
// the store.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		s, err = openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err = openPostgres(ctx, dsn)
	default:
		scheme, _, _ := strings.Cut(dsn, ":")
		return nil, fmt.Errorf("store: open: unsupported database %q: use sqlite:PATH or a postgres:// URL", scheme)
	}
	if err != nil {
		return nil, err
	}
	s.logger = logger
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens the writer and the reader pools of the database file at p.
func openSQLite(ctx context.Context, p string) (*Store, error) {
	if p == "" || strings.Contains(p, "?") {
		return nil, fmt.Errorf("store: open: bad sqlite path %q: use sqlite:PATH with no '?'", p)
	}
	if dir := filepath.Dir(p); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: open: create database folder: %w", err)
		}
	}
	const common = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", p+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The first connection switches the file to WAL before any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, wrap("open sqlite", err)
	}
	r, err := sql.Open("sqlite", p+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r}, nil
}

// openPostgres opens one pool used for reads and writes alike.
func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres: %w: %w", ErrUnavailable, err)
	}
	return &Store{pg: true, w: db, r: db}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping reports whether the database answers; its error wraps ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string {
	if s.pg {
		return dialectPostgres
	}
	return dialectSQLite
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// db runs queries written with ? placeholders on one dialect.
type db struct {
	q  querier
	pg bool
}

func (d db) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return d.q.ExecContext(ctx, d.rebind(query), args...)
}

func (d db) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.q.QueryContext(ctx, d.rebind(query), args...)
}

func (d db) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return d.q.QueryRowContext(ctx, d.rebind(query), args...)
}

// execN runs an UPDATE or DELETE and returns how many rows it touched.
func (d db) execN(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// rebind turns ? placeholders into $1, $2… for PostgreSQL; ? inside quotes is left alone.
func (d db) rebind(query string) string {
	if !d.pg || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ts is a time as the dialect stores it: timestamptz on PostgreSQL, unix nanoseconds on SQLite.
func (d db) ts(t time.Time) any {
	if d.pg {
		return t.UTC()
	}
	return t.UnixNano()
}

// forUpdate is the row-lock clause of a SELECT that is about to change the row: PostgreSQL
// locks it; SQLite's single writer already serialises.
func (d db) forUpdate() string {
	if d.pg {
		return " FOR NO KEY UPDATE"
	}
	return ""
}

// now is the current time as the store keeps it: UTC, microseconds (PostgreSQL's precision),
// so a value written and read back compares equal on both databases.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// reader is the pool for statements that only read.
func (s *Store) reader() db { return db{q: s.r, pg: s.pg} }

// read runs fn in one read-only transaction on the reader pool, so several queries see one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(tx db) error) error {
	var opts *sql.TxOptions
	if s.pg {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.r.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(db{q: tx, pg: s.pg}); err != nil {
		return err
	}
	return tx.Commit()
}

// write runs fn in one transaction on the writer and commits it. Every change the store makes
// goes through here: on SQLite there is exactly one writer connection, so writes queue here in
// order, and a later change may gather the fns of several callers into one commit (group
// commit) without touching the callers. fn must not call write or read again.
func (s *Store) write(ctx context.Context, fn func(tx db) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(db{q: tx, pg: s.pg}); err != nil {
		return err
	}
	return tx.Commit()
}

// migrate applies, in order, each embedded migration not yet recorded in schema_migrations,
// each in its own transaction. On PostgreSQL an advisory lock keeps two servers starting at
// once from applying the same one twice.
func (s *Store) migrate(ctx context.Context) error {
	dir := "migrations/" + s.Dialect()
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("store: migrate: bad migration file name %q: want NNNN_name.sql", e.Name())
		}
		ms = append(ms, migration{v, e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	lock := func(ctx context.Context, tx db) error {
		if !tx.pg {
			return nil
		}
		_, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock(?)", advisoryMigrate)
		return err
	}
	err = s.write(ctx, func(tx db) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at BIGINT NOT NULL
		)`)
		return err
	})
	if err != nil {
		return wrap("migrate", err)
	}
	for _, m := range ms {
		body, err := migrationFiles.ReadFile(path.Join(dir, m.name))
		if err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		applied := false
		err = s.write(ctx, func(tx db) error {
			if err := lock(ctx, tx); err != nil {
				return err
			}
			var n int
			if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.exec(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			_, err := tx.exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
				m.version, time.Now().Unix())
			applied = err == nil
			return err
		})
		if err != nil {
			return wrap("migrate", err)
		}
		if applied {
			s.logger.Info("store: applied migration", "dialect", s.Dialect(), "version", m.version, "file", m.name)
		}
	}
	return nil
}

// Advisory lock keys on PostgreSQL (pg_advisory_xact_lock). advisoryLogs is combined with a
// run id, cut to 32 bits, in the two-key form; two runs sharing a key only wait for each other.
const (
	advisoryMigrate int64 = 0x666c6f7764000001 // "flowd" + 1
	advisoryLogs    int32 = 0x666c6f77         // "flow"
)
