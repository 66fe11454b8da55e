// Package cron reads cron expressions and says when they fire next, in a time zone, across
// daylight-saving changes. It is pure: no clock, no I/O.
//
// An expression has five fields, minute hour day-of-month month day-of-week, each a list of
// `*`, `N`, `A-B`, `*/S`, `A-B/S` or `A/S` (from A to the field's end); months and weekdays may
// be names (jan…dec, sun…sat) and day-of-week 7 is Sunday as 0 is. When both day fields are
// restricted (neither starts with `*`), a day matches when either does, as in Vixie cron. The
// names @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly stand for their
// usual expressions.
//
// Daylight saving, in the schedule's zone:
//   - a wall time the clock skips (02:30 on the night clocks go forward) fires once, at the
//     first minute after the jump (03:00);
//   - a wall time the clock passes twice (02:30 on the night clocks go back) fires once, at its
//     first occurrence, when the hour field is restricted; with `*` hours the schedule fires
//     at every matching instant, so an hourly job still runs every hour.
package cron

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression. The zero Schedule never fires.
type Schedule struct {
	minute, hour, dom, month, dow uint64 // bit n set: value n matches
	domStar, dowStar, hourStar    bool   // the field was * (or */S): not a restriction
	text                          string
}

// String is the expression as written.
func (s Schedule) String() string { return s.text }

// field describes one of the five fields.
type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var fields = [5]field{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var macros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// Parse reads a cron expression. Its errors name the field and say what is allowed.
func Parse(expr string) (Schedule, error) {
	text := strings.TrimSpace(expr)
	spec := text
	if strings.HasPrefix(spec, "@") {
		m, ok := macros[strings.ToLower(spec)]
		if !ok {
			return Schedule{}, fmt.Errorf("unknown cron name %q: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly, or five fields", spec)
		}
		spec = m
	}
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return Schedule{}, fmt.Errorf("cron expression %q has %d fields: want 5 (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1-5\"", text, len(parts))
	}
	var sets [5]uint64
	for i, p := range parts {
		set, err := parseField(p, fields[i])
		if err != nil {
			return Schedule{}, fmt.Errorf("cron field %d (%s) %q: %w", i+1, fields[i].name, p, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 { // 7 is Sunday too
		sets[4] = sets[4]&^(1<<7) | 1
	}
	s := Schedule{minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
		hourStar: strings.HasPrefix(parts[1], "*"), domStar: strings.HasPrefix(parts[2], "*"),
		dowStar: strings.HasPrefix(parts[4], "*"), text: text}
	if !s.dayPossible() {
		return Schedule{}, fmt.Errorf("cron expression %q never fires: none of its months has that day of the month", text)
	}
	return s, nil
}

// parseField reads one comma-separated field into a bit set.
func parseField(p string, f field) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(p, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty list item")
		}
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("step %q: want a whole number of at least 1", stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		if f.name == "day of week" {
			hi = 6 // * is Sunday to Saturday; 7 only by name
		}
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = value(a, f); err != nil {
				return 0, err
			}
			if hi, err = value(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s: its start is after its end", rng)
			}
		default:
			v, err := value(rng, f)
			if err != nil {
				return 0, err
			}
			lo = v
			if !hasStep {
				hi = v
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value reads a number or a name of field f.
func value(s string, f field) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if f.names != nil {
			return 0, fmt.Errorf("%q is not a number from %d to %d or a name (%s…%s)", s, f.min, f.max, f.names[0], f.names[len(f.names)-1])
		}
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, f.min, f.max)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, f.min, f.max)
	}
	return v, nil
}

// dayPossible says whether some month of the schedule has one of its days of the month (the
// day-of-week field, when restricted, always finds a day).
func (s Schedule) dayPossible() bool {
	if s.domStar || !s.dowStar {
		return true
	}
	days := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) != 0 && bits.TrailingZeros64(s.dom) <= days[m] {
			return true
		}
	}
	return false
}

// dayMatches says whether the calendar day of t (read as wall time) is one of the schedule's.
func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	switch {
	case s.domStar && s.dowStar:
		return true
	case s.domStar:
		return dow
	case s.dowStar:
		return dom
	}
	return dom || dow
}

// horizon bounds the search: a schedule that matches no wall time within it (only possible
// for February 29 on a weekday set that misses it for years) reports no next time.
const horizon = 8 * 366 * 24 * time.Hour

// nextWall returns the first wall time at or after w that the schedule matches. Wall times are
// time.Times in UTC standing for a clock reading, free of any zone's jumps; ok is false when
// none falls within the horizon.
func (s Schedule) nextWall(w time.Time) (time.Time, bool) {
	if s.minute == 0 {
		return time.Time{}, false
	}
	w = w.Truncate(time.Minute)
	end := w.Add(horizon)
	for w.Before(end) {
		switch {
		case s.month&(1<<int(w.Month())) == 0:
			w = time.Date(w.Year(), w.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(w):
			w = time.Date(w.Year(), w.Month(), w.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<w.Hour()) == 0:
			w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour()+1, 0, 0, 0, time.UTC)
		case s.minute&(1<<w.Minute()) == 0:
			w = w.Add(time.Minute)
		default:
			return w, true
		}
	}
	return time.Time{}, false
}

// wallOf is t's clock reading in loc, as a wall time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// instants returns when the wall time w happens in loc, earliest first: once on most days,
// twice when the clock goes back over it, never when the clock skips it (then skipped is the
// instant the clock jumped, the first one after w).
func instants(w time.Time, loc *time.Location) (at []time.Time, skipped time.Time) {
	// Zone changes are at least days apart: the offsets a day before and after w are the only
	// ones that can hold at w.
	for _, probe := range []time.Time{w.Add(-24 * time.Hour), w.Add(24 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		t := w.Add(-time.Duration(off) * time.Second)
		if wallOf(t, loc).Equal(w) && (len(at) == 0 || !at[0].Equal(t)) {
			at = append(at, t)
		}
	}
	if len(at) == 2 && at[1].Before(at[0]) {
		at[0], at[1] = at[1], at[0]
	}
	if len(at) == 0 {
		_, off := w.Add(-24 * time.Hour).In(loc).Zone()
		start, _ := w.Add(-time.Duration(off) * time.Second).In(loc).ZoneBounds()
		skipped = start
	}
	return at, skipped
}

// Next returns the first time after `after` at which the schedule fires in loc, and false when
// it never fires again within years.
func (s Schedule) Next(after time.Time, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	// An instant after `after` has a wall time no earlier than after's minus the largest
	// backward jump (two hours): start there, and keep the earliest instant found until the
	// wall times are past it by that much.
	const maxJump = 3 * time.Hour
	w := wallOf(after, loc).Add(-maxJump)
	var best time.Time
	for {
		var ok bool
		if w, ok = s.nextWall(w); !ok {
			return best, !best.IsZero()
		}
		if !best.IsZero() && w.After(wallOf(best, loc).Add(maxJump)) {
			return best, true
		}
		at, skipped := instants(w, loc)
		if len(at) == 2 && !s.hourStar {
			at = at[:1] // a restricted hour fires once when the clock passes it twice
		}
		if len(at) == 0 {
			at = []time.Time{skipped}
		}
		for _, t := range at {
			if t.After(after) && (best.IsZero() || t.Before(best)) {
				best = t
			}
		}
		w = w.Add(time.Minute)
	}
}

// NextN returns the next n fire times after `after` in loc (fewer when it stops firing).
func (s Schedule) NextN(after time.Time, loc *time.Location, n int) []time.Time {
	var out []time.Time
	for len(out) < n {
		t, ok := s.Next(after, loc)
		if !ok {
			break
		}
		out = append(out, t)
		after = t
	}
	return out
}
