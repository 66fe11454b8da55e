package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// wrap gives err the store's context ("store: create user: …") and, unless it already carries
// one, the sentinel that says what happened: ErrNotFound, ErrConflict, ErrUnavailable or
// ErrFull (which is an ErrUnavailable).
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if sentinel := classify(err); sentinel != nil {
		return fmt.Errorf("store: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// classify maps a driver error to a sentinel, or nil when none fits.
func classify(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "53100": // disk_full
			return ErrFull
		case pgErr.Code == "23505": // unique_violation
			return ErrConflict
		case pgErr.Code == "23503": // foreign_key_violation: the row referred to is gone
			return ErrNotFound
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, cannot connect now
			pgErr.Code == "53300": // too_many_connections
			return ErrUnavailable
		}
		return nil
	}
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) {
		switch sqlErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return ErrNotFound
		}
		switch sqlErr.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return ErrFull
		case sqlite3.SQLITE_CONSTRAINT:
			return ErrConflict
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR:
			return ErrUnavailable
		}
		return nil
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF),
		// database/sql's own error once Close has run; it exports no value for it.
		strings.Contains(err.Error(), "sql: database is closed"),
		strings.Contains(err.Error(), "conn closed"):
		return ErrUnavailable
	}
	return nil
}
