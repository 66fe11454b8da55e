package pipeline

import (
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; the binary carries them, whatever the host has

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/cron"
)

// Schedule is one entry of schedules: a cron trigger. It fires at the times of Cron read in
// Location and starts a run with Variables over the defaults, at the head of Branch when the
// pipeline has a Git source.
type Schedule struct {
	Name      string        // optional; "" = its cron expression names it
	Cron      cron.Schedule // what was written is Cron.String()
	Timezone  string        // IANA name as written; "" = UTC
	Location  *time.Location
	Variables map[string]string // declared, non-secret variables; nil = none
	Branch    string            // the source branch to build; "" = none (no source) or its default
}

// Key identifies the schedule among the pipeline's, across revisions: its name, or its cron
// expression and zone. A fire time is recorded once per pipeline and key.
func (s Schedule) Key() string {
	if s.Name != "" {
		return "name:" + s.Name
	}
	return "cron:" + s.Cron.String() + "@" + s.Location.String()
}

// Title is how the schedule is shown: its name, or its cron expression and zone.
func (s Schedule) Title() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Cron.String() + " (" + s.Location.String() + ")"
}

var scheduleKeys = []string{"name", "cron", "timezone", "variables", "branch"}

// maxSchedules bounds a pipeline's schedules.
const maxSchedules = 20

// schedules walks the schedules sequence. Variables must be declared (before or after) and
// not secret; branch needs a source.
func (ps *parser) schedules(f field, p *Pipeline) []Schedule {
	items, ok := ps.boundedSequence(f, maxSchedules, "schedules")
	if !ok {
		return nil
	}
	var out []Schedule
	keys := map[string]string{}
	for i, item := range items {
		at := index(f.path, i)
		n := ps.node(item)
		if n == nil {
			continue
		}
		if n.Kind != yaml.MappingNode {
			ps.addf(n, at, "must be a mapping with cron (and timezone, variables, branch, name), not %s", kindName(n))
			continue
		}
		s := Schedule{Location: time.UTC}
		good, hasCron := true, false
		for _, g := range ps.mapping(n, at, scheduleKeys) {
			switch g.name {
			case "name":
				s.Name, _ = ps.str(g.val, g.path)
			case "cron":
				hasCron = true
				text := ps.requiredStr(g)
				if strings.TrimSpace(text) == "" {
					good = false
					continue
				}
				c, err := cron.Parse(text)
				if err != nil {
					ps.addf(ps.valueOrKey(g), g.path, "%v", err)
					good = false
					continue
				}
				s.Cron = c
			case "timezone":
				tz, ok := ps.str(g.val, g.path)
				if !ok || tz == "" {
					continue
				}
				loc, err := time.LoadLocation(tz)
				if err != nil || tz == "Local" {
					ps.addf(ps.valueOrKey(g), g.path, "unknown time zone %q: use an IANA name such as Europe/Berlin, America/New_York or UTC", tz)
					good = false
					continue
				}
				s.Timezone, s.Location = tz, loc
			case "branch":
				s.Branch, _ = ps.str(g.val, g.path)
				if s.Branch != "" && p.Source == nil {
					ps.addf(ps.valueOrKey(g), g.path, "needs a source: a schedule builds a branch of the pipeline's Git source")
				}
			case "variables":
				s.Variables = ps.scheduleVariables(g, p)
			}
		}
		if !hasCron {
			ps.addf(n, join(at, "cron"), "is required, e.g. cron: \"0 3 * * 1-5\"")
			good = false
		}
		if !good {
			continue
		}
		if prev, dup := keys[s.Key()]; dup {
			ps.addf(n, at, "is the same schedule as %s: give one of them another name", prev)
			continue
		}
		keys[s.Key()] = at
		out = append(out, s)
	}
	return out
}

// boundedSequence returns the items of f's sequence, of which there may be at most max (what
// names them in the problem).
func (ps *parser) boundedSequence(f field, max int, what string) ([]*yaml.Node, bool) {
	items, ok := ps.sequence(f.val, f.path)
	if ok && len(items) > max {
		ps.addf(ps.node(f.val), f.path, "has %d %s: at most %d are allowed", len(items), what, max)
		return nil, false
	}
	return items, ok
}

// scheduleVariables reads a schedule's variables: declared, not secret, one of the options.
func (ps *parser) scheduleVariables(g field, p *Pipeline) map[string]string {
	vars := map[string]string{}
	for _, h := range ps.mapping(g.val, g.path, nil) {
		val, ok := ps.str(h.val, h.path)
		if !ok {
			continue
		}
		v, declared := p.Variable(h.name)
		switch {
		case !declared:
			ps.addf(h.key, h.path, "%q is not a declared variable: declare it under variables", h.name)
		case v.Secret:
			ps.addf(h.key, h.path, "%q is secret: a schedule cannot set it (runs use its stored value)", h.name)
		case len(v.Options) > 0 && !slices.Contains(v.Options, val):
			ps.addf(ps.valueOrKey(h), h.path, "%q is not one of the options (%s)", val, strings.Join(v.Options, ", "))
		default:
			vars[h.name] = val
		}
	}
	return vars
}

// NextFires returns the next n fire times of s after t.
func (s Schedule) NextFires(t time.Time, n int) []time.Time {
	return s.Cron.NextN(t, s.Location, n)
}
