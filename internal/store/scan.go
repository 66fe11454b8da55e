package store

import (
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
	var b []byte
	switch v := v.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("store: cannot read %T as JSON", v)
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
