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
// writer. Every write goes through Store.write, Store.writeRelaxed or Store.writeAs. On SQLite
// one goroutine runs them (group commit, see groupWriter): the writes that queued while the
// previous commit was syncing go into one transaction, each in its own SAVEPOINT, and share one
// commit, so many concurrent writes cost about one disk flush. Job progress (claims, step and
// job ends, log chunks, leases, cancels) is taken before ingest (webhook deliveries), so a
// flood of deliveries cannot starve the jobs they queued.
//
// # Durability classes
//
// A write is in one of two classes, chosen by the method that makes it:
//
//   - Acknowledged (Store.write): the commit of anything a caller is told about — a webhook
//     delivery and its run (the 202), and every API, CLI or UI change: users, tokens,
//     pipelines, members, webhook trigger changes, manual runs, cancel requests, sessions,
//     migrations, and every other write not listed below. On SQLite it commits with synchronous=FULL: the WAL is fsynced before the
//     write returns, so once the caller hears "done" neither a crash of flowd nor of the
//     operating system nor a power loss can undo it.
//   - Relaxed (Store.writeRelaxed): writes that acknowledge nothing to anybody — the
//     scheduler's claims (JobsClaim), step and job status changes and the run advances they
//     cause (StepStart, StepFinish, StepAdvance, JobFinish, JobComplete), log chunk appends
//     (LogAppend) and restart recovery (RecoverInterrupted). On SQLite they commit with
//     synchronous=NORMAL: the WAL is written (to the operating system) but not fsynced at
//     commit. A crash of flowd loses none of them; only an operating system crash or a power
//     loss can, and then only the last ones before it.
//
// Why that is safe: the WAL is one append-only log whose frames carry chained checksums, and
// recovery keeps the frames up to the first bad one, so what survives a power loss is always
// a prefix of the commit order; every FULL commit (and every checkpoint) fsyncs the whole log
// up to itself. Hence a power loss can never lose an acknowledged write, nor a relaxed write
// committed before one; it can lose at most the relaxed commits after the last fsync — a
// fraction of a second of job progress — and the database it leaves is one flowd did commit
// at some moment. flowd died with the machine, so restart recovery then finds: a job seen as
// running (its claim survived, its end did not) is failed with the recovery log line; a job
// seen as queued (its claim was lost) runs; log lines of the lost commits are missing from a
// job that is failed anyway. A run the caller was told about is never among what is lost.
//
// The group writer sets PRAGMA synchronous=NORMAL before a transaction made only of relaxed
// writes and FULL before any transaction holding an acknowledged one (a mixed group commits
// FULL), and only when the setting changes; the setting is per connection and read at each
// COMMIT. On PostgreSQL every write commits as the server is configured (synchronous_commit):
// the database server can crash and lose commits while flowd keeps running on what it was
// told, so relaxing there could make a job run twice; PostgreSQL writes are not relaxed.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"           // registers the "sqlite" database/sql driver
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
	w      *sql.DB      // writes and read-write transactions: one connection on SQLite
	r      *sql.DB      // reads that write nothing: a read-only pool on SQLite, w on PostgreSQL
	g      *groupWriter // SQLite: the one goroutine that runs writes, several per commit; nil on PostgreSQL
	rc     *stmtCache   // SQLite: prepared statements of the reader pool; nil on PostgreSQL
	logger *slog.Logger

	dsn    string // PostgreSQL: what Listen connects to
	schema string // PostgreSQL: the current schema, part of every notification channel's name
	hub    hub    // Subscribe's subscribers, fed by Notify (SQLite) or Listen (PostgreSQL)
	// announce, when set, sends what Changed is told (see SetAnnouncer).
	announce func(topic, payload string)

	stats writeStats

	// async (PostgreSQL only) is a small pool whose sessions commit without waiting for the
	// WAL flush (synchronous_commit off), for single statements, each its own transaction,
	// whose loss in a crash harms nothing: the run counter's (see Store.numbers). Such a
	// commit holds its row lock for microseconds instead of a disk flush, so a hot row (a
	// pipeline's counter) does not make its writers queue one flush at a time.
	async *sql.DB
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
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"+
		// Group commit runs each write in a SAVEPOINT; keep their sub-journals in memory.
		"&_pragma=temp_store(MEMORY)")
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
	s := &Store{w: w, r: r, rc: newStmtCache(r)}
	s.g = startGroupWriter(w, &s.stats)
	return s, nil
}

// idleInTransactionTimeout is how long PostgreSQL keeps a session of flowd's that sits idle
// inside a transaction before it ends it and releases its locks.
const idleInTransactionTimeout = "5s"

// openPostgres opens one pool used for reads and writes alike, and the run counter's pool.
func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	mainCfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// A server that stops between two statements of a transaction (a frozen VM, SIGSTOP, a
	// partition that leaves its TCP connection open) keeps that transaction's locks: a lease
	// renewal's, say, which the rescuer then waits for, so no lost job anywhere is rescued
	// until the server comes back. PostgreSQL ends such a session instead, unless the DSN
	// says otherwise; flowd never waits on its side of an open transaction.
	if _, set := mainCfg.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		mainCfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransactionTimeout
	}
	db := stdlib.OpenDB(*mainCfg)
	// As many idle connections as open ones: database/sql closes a returned connection beyond
	// the idle bound, and under load (more concurrent requests than that bound) every request
	// then paid for a new PostgreSQL backend process. Idle ones still go after ConnMaxIdleTime.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres: %w: %w", ErrUnavailable, err)
	}
	// Notification channels are per database, not per schema: name them after the schema, so
	// stores in two schemas of one database (tests do that) never hear each other.
	var schema string
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(current_schema(), '')").Scan(&schema); err != nil {
		db.Close()
		return nil, wrap("open postgres", err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	cfg.RuntimeParams["synchronous_commit"] = "off"
	async := stdlib.OpenDB(*cfg)
	// Its own pool, never the main one: a run's transaction holds a main connection while it
	// waits for a number, so numbers taken from the main pool could exhaust it. Its statements
	// take microseconds; a few connections serve many transactions.
	async.SetMaxOpenConns(8)
	async.SetMaxIdleConns(8)
	async.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{pg: true, w: db, r: db, dsn: dsn, schema: schema, async: async}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.g != nil {
		s.g.stop() // commits what is queued; later writes fail with ErrUnavailable
	}
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	if s.async != nil {
		err = errors.Join(err, s.async.Close())
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
	n  *atomic.Int64 // when set, counts the statements run (a write's: see WriteStats)
}

func (d db) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	d.count()
	return d.q.ExecContext(ctx, d.rebind(query), args...)
}

func (d db) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	d.count()
	return d.q.QueryContext(ctx, d.rebind(query), args...)
}

func (d db) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	d.count()
	return d.q.QueryRowContext(ctx, d.rebind(query), args...)
}

func (d db) count() {
	if d.n != nil {
		d.n.Add(1)
	}
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

// clock is the SQL expression of the database's current time as the dialect stores times.
// Heartbeats and leases are written and compared with it, never with a process's clock, so
// servers whose clocks disagree still agree on who is live.
func (d db) clock() string {
	if d.pg {
		return "now()"
	}
	return "CAST(unixepoch('subsec')*1000000000 AS INTEGER)"
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
	return time.Now().Add(time.Duration(clockOffset.Load())).UTC().Truncate(time.Microsecond)
}

// clockOffset shifts now() (see SetClockOffset); 0 in production.
var clockOffset atomic.Int64

// SetClockOffset shifts the time this process stamps on records (created_at and the like) by
// d: a test hook (FLOWD_TEST_CLOCK_OFFSET) that shows a server with a wrong clock changes no
// lease, since leases and heartbeats are timed by the database's clock only.
func SetClockOffset(d time.Duration) { clockOffset.Store(int64(d)) }

// reader is the pool for statements that only read.
func (s *Store) reader() db {
	if s.rc != nil {
		return db{q: cachedPool{s.rc}}
	}
	return db{q: s.r, pg: s.pg}
}

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
	q := querier(tx)
	if s.rc != nil {
		q = cachedTx{tx: tx, c: s.rc}
	}
	if err := fn(db{q: q, pg: s.pg}); err != nil {
		return err
	}
	return tx.Commit()
}

// write runs fn in one transaction on the writer and commits it; after it returns nil, fn's
// changes are durable, power loss included (an acknowledged write; see the package comment).
// Every change the store makes goes through here or writeRelaxed. fn must not call write or
// read again.
//
// On PostgreSQL each call is its own transaction (DeliveryRecord relies on that to retry a
// unique violation). On SQLite the calls go to the group writer (see groupWriter): concurrent
// calls share one transaction and one fsync, each fn inside its own SAVEPOINT, so a fn's error
// undoes only its own work and is returned only to its caller.
func (s *Store) write(ctx context.Context, fn func(tx db) error) error {
	return s.writeAs(ctx, acknowledged, fn)
}

// writeRelaxed is write for the job path's writes, which acknowledge nothing to a caller (see
// the package comment's durability classes): after it returns nil, fn's changes survive a
// crash of flowd, and an operating system crash or power loss can undo them only together with
// every write committed after them. On SQLite such a group commits with synchronous=NORMAL,
// without an fsync, and the group writer takes these writes before ingest (jobProgress); on
// PostgreSQL it is write.
func (s *Store) writeRelaxed(ctx context.Context, fn func(tx db) error) error {
	return s.writeAs(ctx, relaxed|jobProgress, fn)
}

// writeClass says how a write commits and when the group writer takes it (SQLite; on
// PostgreSQL every write is a transaction of its own, committed as the server is configured).
type writeClass uint8

const (
	// acknowledged is a write whose commit a caller is told about: synchronous=FULL, taken
	// in the ingest lane (webhook deliveries, API changes).
	acknowledged writeClass = 0
	// relaxed may commit with synchronous=NORMAL (see the package comment).
	relaxed writeClass = 1 << iota
	// jobProgress is taken before ingest (see groupWriter.gather): a claim, a step's or a
	// job's end, log chunks, leases, a cancel. Job progress frees what ingest queued.
	jobProgress
)

// writeAs is write or writeRelaxed with the class given.
func (s *Store) writeAs(ctx context.Context, class writeClass, fn func(tx db) error) error {
	if s.g == nil {
		return s.writeTx(ctx, fn)
	}
	return s.g.do(ctx, fn, class)
}

// writeTx runs fn in a transaction of its own.
func (s *Store) writeTx(ctx context.Context, fn func(tx db) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	s.stats.writes.Add(1)
	s.stats.txs.Add(1)
	if err := fn(db{q: tx, pg: s.pg, n: &s.stats.stmts}); err != nil {
		return err
	}
	return tx.Commit()
}

// writeStats counts what writes cost; see WriteStats.
type writeStats struct {
	writes, txs, stmts atomic.Int64
}

// WriteStats is what the store's writes cost since it was opened.
type WriteStats struct {
	// Writes is how many writes ran (each a caller's change, all or nothing).
	Writes int64
	// Transactions is how many transactions they ran in: on SQLite several writes share one
	// (group commit), on PostgreSQL each write is one.
	Transactions int64
	// Statements is how many SQL statements the writes ran, reads inside them included; on
	// PostgreSQL each is a round trip to the server, and so are a transaction's BEGIN and
	// COMMIT, which are not counted here. SQLite's savepoints around grouped writes are not
	// counted either.
	Statements int64
}

// WriteStats returns what the store's writes cost since it was opened: for tests that pin the
// cost of a run, and for benchmarks.
func (s *Store) WriteStats() WriteStats {
	return WriteStats{Writes: s.stats.writes.Load(), Transactions: s.stats.txs.Load(), Statements: s.stats.stmts.Load()}
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

// Group commit on SQLite.
//
// The writer connection fsyncs once per COMMIT (synchronous=FULL), and that flush, not the SQL,
// is what a write costs. groupWriter is the one goroutine that owns the connection: it takes
// the writes queued at that moment (at most maxGroup; it never waits for more, so a lone write
// costs what it did before), runs them in one transaction, each fn inside its own SAVEPOINT,
// and commits once. Each caller gets its own fn's error (its savepoint rolled back, the others
// kept) or the COMMIT's. A caller whose ctx ends before its turn is skipped and gets ctx's
// error; once its fn has started it runs to the end with ctx's values but not its cancellation,
// since an interrupted statement could make SQLite roll back the whole group.
//
// Writes wait in two lanes. Job progress (writeRelaxed, and writes marked jobProgress: claims,
// steps, job ends, log chunks, leases, cancels) is taken before ingest (webhook deliveries and
// every other write), and a group that carries job progress takes at most ingestShare ingest
// writes: a job's write then waits for at most the group being committed and its own small
// one, however many deliveries pour in, so execution is not starved by ingest. Ingest is not
// starved either: every group takes at least ingestShare of its writes when any wait (job
// progress gets at most maxGroup-ingestShare places), and all of its room when no job
// progress waits. See gather.

// maxGroup bounds how many writes share one transaction.
const maxGroup = 128

// ingestShare is how many ingest writes a group takes when it also carries job progress (and
// how many places it keeps for them when job progress is plenty).
const ingestShare = 32

// States of a writeReq: the writer moves queued → taken; a caller that gives up moves
// queued → abandoned. Whoever moves it first decides.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// errClosed is what writes get once Close has begun.
var errClosed = fmt.Errorf("%w: sql: database is closed", ErrUnavailable)

// writeReq is one caller's write waiting for the group writer.
type writeReq struct {
	ctx      context.Context
	fn       func(tx db) error
	class    writeClass
	state    atomic.Int32
	done     chan struct{} // closed once err and panicked are set
	err      error
	panicked any // a panic of fn, raised again in the caller's goroutine
}

func (r *writeReq) finish(err error) {
	r.err = err
	close(r.done)
}

type groupWriter struct {
	w *sql.DB
	// jobs and ingest are the two lanes: writes of class jobProgress, and the others.
	jobs, ingest chan *writeReq
	quit         chan struct{} // closed by stop: no new writes
	stopped      chan struct{} // closed when the loop has returned
	stopOnce     sync.Once
	commits      atomic.Int64 // transactions committed or tried, for tests
	stats        *writeStats  // the store's
	// takenJobs and takenIngest hold the lanes' parts of the group gather makes; only the
	// loop goroutine uses them.
	takenJobs, takenIngest []*writeReq
	stmts                  *stmtCache // the writer's prepared statements
	// savepoint, release and rollbackTo are prepared once: every grouped write runs two.
	savepoint, release, rollbackTo *sql.Stmt
	// sync is the connection's PRAGMA synchronous as last set (syncFull from the DSN); only
	// the loop goroutine uses it.
	sync syncMode
}

func startGroupWriter(w *sql.DB, stats *writeStats) *groupWriter {
	g := &groupWriter{
		w:       w,
		stats:   stats,
		stmts:   newStmtCache(w),
		jobs:    make(chan *writeReq, 4*maxGroup),
		ingest:  make(chan *writeReq, 4*maxGroup),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	// Prepared while the connection is free; if one fails, the text runs unprepared.
	g.savepoint, _ = w.Prepare(sqlSavepoint)
	g.release, _ = w.Prepare(sqlRelease)
	g.rollbackTo, _ = w.Prepare(sqlRollbackTo)
	go g.loop()
	return g
}

const (
	sqlSavepoint  = "SAVEPOINT flowd_write"
	sqlRelease    = "RELEASE flowd_write"
	sqlRollbackTo = "ROLLBACK TO flowd_write"
)

// execPrepared runs st (the prepared form of query) in tx, or query when st is nil.
func execPrepared(ctx context.Context, tx *sql.Tx, st *sql.Stmt, query string) error {
	var err error
	if st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx)
	} else {
		_, err = tx.ExecContext(ctx, query)
	}
	return err
}

// stop lets the loop commit what is queued and waits for it to return.
func (g *groupWriter) stop() {
	g.stopOnce.Do(func() { close(g.quit) })
	<-g.stopped
}

// do queues fn in its class's lane and waits for its outcome.
func (g *groupWriter) do(ctx context.Context, fn func(tx db) error, class writeClass) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, fn: fn, class: class, done: make(chan struct{})}
	lane := g.ingest
	if class&jobProgress != 0 {
		lane = g.jobs
	}
	select {
	case lane <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.quit:
		return errClosed
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		<-r.done // fn has started: its outcome is known soon
	case <-g.stopped:
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return errClosed // queued after the loop's last look
		}
		<-r.done
	}
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

func (g *groupWriter) loop() {
	defer close(g.stopped)
	batch := make([]*writeReq, 0, maxGroup)
	g.takenJobs = make([]*writeReq, 0, maxGroup)
	g.takenIngest = make([]*writeReq, 0, maxGroup)
	for {
		var first *writeReq
		select {
		case first = <-g.jobs:
		case first = <-g.ingest:
		case <-g.quit:
			// Commit what is queued, then stop; later callers see stopped.
			for {
				batch = g.gather(batch[:0], nil)
				if len(batch) == 0 {
					return
				}
				g.commit(batch)
			}
		}
		batch = g.gather(batch[:0], first)
		g.commit(batch)
		clear(batch)
		g.stmts.preparePending() // the connection is free now
	}
}

// gather makes the next group, in batch, from first (taken already, or nil) and what the lanes
// hold now, without waiting: job progress first, up to maxGroup-ingestShare writes; then
// ingest, up to ingestShare when the group carries job progress and up to the room left
// otherwise; then job progress again into the room ingest left. Job progress runs first in
// the group.
func (g *groupWriter) gather(batch []*writeReq, first *writeReq) []*writeReq {
	jobs, ingest := g.takenJobs[:0], g.takenIngest[:0]
	if first != nil {
		if first.class&jobProgress != 0 {
			jobs = append(jobs, first)
		} else {
			ingest = append(ingest, first)
		}
	}
	jobs = take(g.jobs, jobs, maxGroup-ingestShare)
	room := maxGroup - len(jobs)
	if len(jobs) > 0 {
		room = min(room, ingestShare)
	}
	ingest = take(g.ingest, ingest, room)
	jobs = take(g.jobs, jobs, maxGroup-len(ingest))
	batch = append(append(batch, jobs...), ingest...)
	clear(jobs)
	clear(ingest)
	return batch
}

// take adds to into what lane holds now, until into holds n, without waiting.
func take(lane chan *writeReq, into []*writeReq, n int) []*writeReq {
	for len(into) < n {
		select {
		case r := <-lane:
			into = append(into, r)
		default:
			return into
		}
	}
	return into
}

// commit runs the writes of batch whose callers still wait.
func (g *groupWriter) commit(batch []*writeReq) {
	live := make([]*writeReq, 0, len(batch))
	for _, r := range batch {
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			continue // the caller gave up and has returned
		}
		if err := r.ctx.Err(); err != nil {
			r.finish(err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if err := g.setSync(live); err != nil {
		for _, r := range live {
			r.finish(err)
		}
		return
	}
	switch len(live) {
	case 0:
	case 1:
		g.one(live[0])
	default:
		g.group(live)
	}
}

// syncMode is a value of PRAGMA synchronous on the writer connection.
type syncMode uint8

const (
	syncFull    syncMode = iota // synchronous=FULL, as the DSN opens the connection
	syncNormal                  // synchronous=NORMAL
	syncUnknown                 // a PRAGMA failed: set it again before the next commit
)

// setSync sets the connection's synchronous mode for the transaction about to run reqs: NORMAL
// when every write of it is relaxed, FULL otherwise, and only when that changes. The
// connection is between transactions here, and SQLite reads the setting at each COMMIT. A
// failure to set FULL fails the transaction's writes (none may commit with less); a failure to
// set NORMAL is ignored (FULL, or whatever the connection has, is at least as safe).
func (g *groupWriter) setSync(reqs []*writeReq) error {
	want := syncNormal
	for _, r := range reqs {
		if r.class&relaxed == 0 {
			want = syncFull
			break
		}
	}
	if want == g.sync {
		return nil
	}
	q := "PRAGMA synchronous = FULL"
	if want == syncNormal {
		q = "PRAGMA synchronous = NORMAL"
	}
	if _, err := g.w.ExecContext(context.Background(), q); err != nil {
		g.sync = syncUnknown
		if want == syncFull {
			return fmt.Errorf("set synchronous=FULL: %w", err)
		}
		return nil
	}
	g.sync = want
	return nil
}

// one runs a lone write in a transaction of its own, under its caller's ctx, as write did
// before there were groups.
func (g *groupWriter) one(r *writeReq) {
	var err error
	r.panicked = catch(func() {
		tx, berr := g.w.BeginTx(r.ctx, nil)
		if berr != nil {
			err = berr
			return
		}
		defer tx.Rollback()
		g.stats.writes.Add(1)
		if err = r.fn(db{q: cachedTx{tx: tx, c: g.stmts, writer: true}, n: &g.stats.stmts}); err != nil {
			return
		}
		g.commits.Add(1)
		g.stats.txs.Add(1)
		err = tx.Commit()
	})
	r.finish(err)
}

// group runs several writes in one transaction, each in a savepoint, and commits once.
func (g *groupWriter) group(reqs []*writeReq) {
	tx, err := g.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range reqs {
			r.finish(err)
		}
		return
	}
	defer tx.Rollback()
	q := cachedTx{tx: tx, c: g.stmts, writer: true, detach: true}
	ok := make([]*writeReq, 0, len(reqs))
	// broken ends the group early when SQLite rolled back the whole transaction (an I/O
	// error, a full disk): the writes already run lost their work with it; the rest get a
	// transaction of their own.
	broken := func(i int, cause error) {
		err := fmt.Errorf("group commit: the transaction was rolled back: %w", cause)
		for _, r := range ok {
			r.finish(err)
		}
		tx.Rollback()
		if rest := reqs[i+1:]; len(rest) > 0 {
			if len(rest) == 1 {
				g.one(rest[0])
			} else {
				g.group(rest)
			}
		}
	}
	for i, r := range reqs {
		ctx := context.WithoutCancel(r.ctx)
		if err := execPrepared(ctx, tx, g.savepoint, sqlSavepoint); err != nil {
			r.finish(err)
			broken(i, err)
			return
		}
		var ferr error
		g.stats.writes.Add(1)
		r.panicked = catch(func() { ferr = r.fn(db{q: q, n: &g.stats.stmts}) })
		if ferr == nil && r.panicked == nil {
			if err := execPrepared(ctx, tx, g.release, sqlRelease); err != nil {
				r.finish(err)
				broken(i, err)
				return
			}
			ok = append(ok, r)
			continue
		}
		if ferr == nil {
			ferr = errors.New("store: write panicked")
		}
		r.finish(ferr) // its work is undone below and never committed
		if err := execPrepared(ctx, tx, g.rollbackTo, sqlRollbackTo); err != nil {
			broken(i, err)
			return
		}
		if err := execPrepared(ctx, tx, g.release, sqlRelease); err != nil {
			broken(i, err)
			return
		}
	}
	g.commits.Add(1)
	g.stats.txs.Add(1)
	err = tx.Commit()
	for _, r := range ok {
		r.finish(err)
	}
}

// catch calls fn and returns what it panicked with, or nil.
func catch(fn func()) (panicked any) {
	defer func() { panicked = recover() }()
	fn()
	return nil
}

// Prepared statements on SQLite.
//
// modernc's driver prepares (parses and plans) every statement on every call, and for the short
// statements of a webhook delivery that is most of the work. stmtCache keeps one *sql.Stmt per
// query text that has arguments (so never a multi-statement migration), at most maxCachedStmts
// of them. The writer's cache cannot prepare while its only connection is inside a
// transaction, so a miss there runs the statement unprepared and queues the text; the group
// writer prepares the queued texts between transactions. Readers prepare on a miss.

// maxCachedStmts bounds a cache; queries past it run unprepared.
const maxCachedStmts = 512

type stmtCache struct {
	db      *sql.DB
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
}

func newStmtCache(d *sql.DB) *stmtCache {
	return &stmtCache{db: d, m: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// lookup returns the prepared statement of query, or nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// want queues query to be prepared by preparePending.
func (c *stmtCache) want(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(c.pending) < maxCachedStmts {
		c.pending[query] = true
	}
}

// preparePending prepares the queued queries; a query that fails to prepare is dropped (its
// callers see the error when it runs unprepared).
func (c *stmtCache) preparePending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.pending {
		delete(c.pending, q)
		if st, err := c.db.PrepareContext(context.Background(), q); err == nil {
			c.m[q] = st
		}
	}
}

// prepare returns query's statement, preparing it now if there is room; nil if not.
func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	if st := c.lookup(query); st != nil {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[query]; old != nil {
		st.Close()
		return old
	}
	if len(c.m) >= maxCachedStmts {
		st.Close()
		return nil
	}
	c.m[query] = st
	return st
}

// cachedPool runs reads on the reader pool through prepared statements.
type cachedPool struct{ c *stmtCache }

func (p cachedPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, query, args); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.c.db.ExecContext(ctx, query, args...)
}

func (p cachedPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query, args); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.c.db.QueryContext(ctx, query, args...)
}

func (p cachedPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query, args); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.c.db.QueryRowContext(ctx, query, args...)
}

func (p cachedPool) stmt(ctx context.Context, query string, args []any) *sql.Stmt {
	if len(args) == 0 {
		return nil
	}
	return p.c.prepare(ctx, query)
}

// cachedTx runs a transaction's statements through the cache's prepared statements. With
// writer, a miss is queued for the group writer to prepare. With detach, statements run with
// their ctx's values but not its cancellation: modernc's driver interrupts a statement whose
// ctx ends, and an interrupted write inside a transaction may roll back the whole transaction,
// other callers' grouped work too.
type cachedTx struct {
	tx     *sql.Tx
	c      *stmtCache
	writer bool
	detach bool
}

func (t cachedTx) ctx(ctx context.Context) context.Context {
	if t.detach {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t cachedTx) stmt(ctx context.Context, query string, args []any) *sql.Stmt {
	if len(args) == 0 {
		return nil
	}
	st := t.c.lookup(query)
	if st == nil {
		if t.writer {
			t.c.want(query)
		}
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, query, args); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, query, args); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, query, args); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
