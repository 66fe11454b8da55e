package cron

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v (the tests need the system's time zone database, Debian's tzdata)", name, err)
	}
	return loc
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{"", "has 0 fields"},
		{"0 3 * *", "has 4 fields: want 5"},
		{"60 * * * *", "cron field 1 (minute) \"60\": 60 is out of range 0-59"},
		{"* 24 * * *", "field 2 (hour) \"24\": 24 is out of range 0-23"},
		{"* * 0 * *", "field 3 (day of month) \"0\": 0 is out of range 1-31"},
		{"* * * 13 *", "field 4 (month) \"13\": 13 is out of range 1-12"},
		{"* * * foo *", `"foo" is not a number from 1 to 12 or a name (jan…dec)`},
		{"* * * * 8", "field 5 (day of week) \"8\": 8 is out of range 0-7"},
		{"*/0 * * * *", `step "0": want a whole number of at least 1`},
		{"5-1 * * * *", "range 5-1: its start is after its end"},
		{"1,,2 * * * *", "empty list item"},
		{"@every 5m", `unknown cron name "@every 5m"`},
		{"0 0 30 2 *", "never fires"},
	} {
		_, err := Parse(c.expr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v; want an error with %q", c.expr, err, c.want)
		}
	}
}

// at reads "2026-03-29 02:30" as a wall time in loc (the first instant it happens).
func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fmtAll(ts []time.Time, loc *time.Location) string {
	var b []string
	for _, t := range ts {
		b = append(b, t.In(loc).Format("2006-01-02 15:04 MST"))
	}
	return strings.Join(b, ", ")
}

func TestNext(t *testing.T) {
	utc := time.UTC
	berlin := mustLoc(t, "Europe/Berlin")
	kolkata := mustLoc(t, "Asia/Kolkata")
	for _, c := range []struct {
		expr  string
		loc   *time.Location
		after string
		want  string // the next three, in loc
	}{
		{"0 3 * * 1-5", utc, "2026-12-04 02:00", "2026-12-04 03:00 UTC, 2026-12-07 03:00 UTC, 2026-12-08 03:00 UTC"}, // Fri, then Mon, Tue
		{"*/20 * * * *", utc, "2026-12-04 02:59", "2026-12-04 03:00 UTC, 2026-12-04 03:20 UTC, 2026-12-04 03:40 UTC"},
		{"@daily", kolkata, "2026-12-04 23:59", "2026-12-05 00:00 IST, 2026-12-06 00:00 IST, 2026-12-07 00:00 IST"},
		{"@hourly", utc, "2026-12-04 10:00", "2026-12-04 11:00 UTC, 2026-12-04 12:00 UTC, 2026-12-04 13:00 UTC"},
		{"@weekly", utc, "2026-12-04 10:00", "2026-12-06 00:00 UTC, 2026-12-13 00:00 UTC, 2026-12-20 00:00 UTC"},
		{"@monthly", utc, "2026-12-04 10:00", "2027-01-01 00:00 UTC, 2027-02-01 00:00 UTC, 2027-03-01 00:00 UTC"},
		{"@yearly", utc, "2026-12-04 10:00", "2027-01-01 00:00 UTC, 2028-01-01 00:00 UTC, 2029-01-01 00:00 UTC"},
		// Both day fields restricted: either matches (the 13th, or any Friday).
		{"0 0 13 * fri", utc, "2026-12-01 00:00", "2026-12-04 00:00 UTC, 2026-12-11 00:00 UTC, 2026-12-13 00:00 UTC"},
		// Day of week 7 is Sunday; names and ranges.
		{"0 12 * * 7", utc, "2026-12-01 00:00", "2026-12-06 12:00 UTC, 2026-12-13 12:00 UTC, 2026-12-20 12:00 UTC"},
		{"0 12 1 jan-mar/2 *", utc, "2026-12-01 00:00", "2027-01-01 12:00 UTC, 2027-03-01 12:00 UTC, 2028-01-01 12:00 UTC"},
		{"0 0 29 2 *", utc, "2026-12-01 00:00", "2028-02-29 00:00 UTC, 2032-02-29 00:00 UTC, 2036-02-29 00:00 UTC"},
		// Spring forward in Berlin (2027-03-28, 02:00 CET → 03:00 CEST): 02:30 does not exist
		// that night and fires at 03:00 once; the other nights as usual.
		{"30 2 * * *", berlin, "2027-03-27 03:00", "2027-03-28 03:00 CEST, 2027-03-29 02:30 CEST, 2027-03-30 02:30 CEST"},
		{"*/30 * * * *", berlin, "2027-03-28 01:00", "2027-03-28 01:30 CET, 2027-03-28 03:00 CEST, 2027-03-28 03:30 CEST"},
		// Fall back (2026-10-25, 03:00 CEST → 02:00 CET): a fixed 02:30 fires once, at the
		// first pass; a schedule with * hours fires at every matching instant.
		{"30 2 * * *", berlin, "2026-10-24 03:00", "2026-10-25 02:30 CEST, 2026-10-26 02:30 CET, 2026-10-27 02:30 CET"},
		{"0,30 * * * *", berlin, "2026-10-25 01:45", "2026-10-25 02:00 CEST, 2026-10-25 02:30 CEST, 2026-10-25 02:00 CET"},
	} {
		s, err := Parse(c.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.expr, err)
		}
		got := fmtAll(s.NextN(at(t, c.loc, c.after), c.loc, 3), c.loc)
		if got != c.want {
			t.Errorf("%q in %s after %s:\n got %s\nwant %s", c.expr, c.loc, c.after, got, c.want)
		}
	}
}

// TestNextIsStrictlyLaterAndMonotonic: walking a year of fire times of several schedules in a
// zone with daylight saving, every next time is later than the one before, and a schedule
// fixed at one wall time fires exactly once a day.
func TestNextIsStrictlyLaterAndMonotonic(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"} {
		loc := mustLoc(t, zone)
		s, err := Parse("30 2 * * *")
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
		days := map[string]int{}
		prev := from
		for {
			next, ok := s.Next(prev, loc)
			if !ok {
				t.Fatalf("%s: no next after %s", zone, prev)
			}
			if !next.After(prev) {
				t.Fatalf("%s: next %s is not after %s", zone, next, prev)
			}
			if next.In(loc).Year() > 2026 {
				break
			}
			days[next.In(loc).Format("2006-01-02")]++
			prev = next
		}
		if len(days) != 365 {
			t.Errorf("%s: fired on %d days of 2026, want 365", zone, len(days))
		}
		for d, n := range days {
			if n != 1 {
				t.Errorf("%s: fired %d times on %s", zone, n, d)
			}
		}
	}
}
