package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// timeScan reads a time stored either way (unix nanoseconds on SQLite, timestamptz on
// PostgreSQL) into *t; NULL leaves the zero time.
type timeScan struct{ t *time.Time }

func (s timeScan) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.Unix(0, v).UTC()
	case time.Time:
		*s.t = v.UTC()
	default:
		return fmt.Errorf("store: cannot read %T as a time", v)
	}
	return nil
}

// nullTimeScan reads a nullable time into **t: nil for NULL.
type nullTimeScan struct{ t **time.Time }

func (s nullTimeScan) Scan(v any) error {
	if v == nil {
		*s.t = nil
		return nil
	}
	var t time.Time
	if err := (timeScan{&t}).Scan(v); err != nil {
		return err
	}
	*s.t = &t
	return nil
}

// jsonMap reads a JSON object of strings stored as text; NULL or ” is an empty map.
type jsonMap struct{ m *map[string]string }

func (s jsonMap) Scan(v any) error {
	b, err := textBytes(v, "JSON")
	if err != nil {
		return err
	}
	m := map[string]string{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("store: read JSON column: %w", err)
		}
	}
	*s.m = m
	return nil
}

// scanner is one row of a result: *sql.Row or *sql.Rows.
type scanner = interface{ Scan(...any) error }

// queryAll runs q on d and reads every row of its result with scan, in order; nil when there
// are none.
func queryAll[T any](ctx context.Context, d db, scan func(scanner, *T) error, q string, args ...any) ([]T, error) {
	rows, err := d.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// scanID reads a row of one id.
func scanID(row scanner, id *int64) error { return row.Scan(id) }

// textBytes returns the bytes of a text column's value v: nil for NULL, an error naming what
// for a value of any other type.
func textBytes(v any, what string) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	}
	return nil, fmt.Errorf("store: cannot read %T as %s", v, what)
}

// toJSON is the text a map of strings is stored as.
func toJSON(m map[string]string) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// nullInt is a nullable int for exit codes.
func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// intPtr reads a nullable integer.
func intPtr(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// nullID stores 0 as NULL, for optional references.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// placeholders is "?, ?, …" n times.
func placeholders(n int) string {
	b := make([]byte, 0, 3*n)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '?')
	}
	return string(b)
}
