package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const scheduled = `name: nightly
variables:
  abc: "123"
  TARGET: {default: staging, options: [staging, production]}
  TOKEN: {secret: true}
source:
  url: https://git.example.com/acme/app.git
schedules:
  - cron: "0 3 * * 1-5"
    timezone: Europe/Berlin
    variables: {abc: nightly, TARGET: production}
    branch: main
  - name: hourly
    cron: "@hourly"
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: make
`

func TestParseSchedules(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(scheduled))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Schedules) != 2 {
		t.Fatalf("schedules = %+v", p.Schedules)
	}
	s := p.Schedules[0]
	if s.Cron.String() != "0 3 * * 1-5" || s.Location.String() != "Europe/Berlin" || s.Branch != "main" ||
		s.Variables["abc"] != "nightly" || s.Variables["TARGET"] != "production" || s.Key() != "cron:0 3 * * 1-5@Europe/Berlin" {
		t.Errorf("schedule 0 = %+v (key %s)", s, s.Key())
	}
	// Monday 2026-12-07 02:30 UTC is 03:30 in Berlin: the next fires are Tuesday to Thursday 03:00.
	next := s.NextFires(time.Date(2026, 12, 7, 2, 30, 0, 0, time.UTC), 3)
	var got []string
	for _, t := range next {
		got = append(got, t.UTC().Format(time.RFC3339))
	}
	if strings.Join(got, " ") != "2026-12-08T02:00:00Z 2026-12-09T02:00:00Z 2026-12-10T02:00:00Z" {
		t.Errorf("next fires = %v", got)
	}
	if h := p.Schedules[1]; h.Name != "hourly" || h.Location != time.UTC || h.Key() != "name:hourly" || h.Title() != "hourly" {
		t.Errorf("schedule 1 = %+v", h)
	}
	c := p.clone()
	c.Schedules[0].Variables["abc"] = "changed"
	if p.Schedules[0].Variables["abc"] != "nightly" {
		t.Error("clone shares a schedule's variables")
	}
}

func TestParseScheduleProblems(t *testing.T) {
	t.Parallel()
	base := "name: x\nvariables:\n  abc: \"1\"\n  K: {secret: true}\n  T: {options: [a, b]}\nschedules:\n"
	stages := "stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	for _, c := range []struct{ yaml, want string }{
		{"  - cron: \"61 * * * *\"\n", `7:11: schedules[0].cron: cron field 1 (minute) "61": 61 is out of range 0-59`},
		{"  - timezone: UTC\n", `7:5: schedules[0].cron: is required`},
		{"  - cron: \"@daily\"\n    timezone: Mars/Olympus\n", `8:15: schedules[0].timezone: unknown time zone "Mars/Olympus"`},
		{"  - cron: \"@daily\"\n    variables: {nope: 1}\n", `8:17: schedules[0].variables.nope: "nope" is not a declared variable`},
		{"  - cron: \"@daily\"\n    variables: {K: x}\n", `8:17: schedules[0].variables.K: "K" is secret`},
		{"  - cron: \"@daily\"\n    variables: {T: c}\n", `8:20: schedules[0].variables.T: "c" is not one of the options (a, b)`},
		{"  - cron: \"@daily\"\n    branch: main\n", `8:13: schedules[0].branch: needs a source`},
		{"  - cron: \"@daily\"\n  - cron: \"@daily\"\n", `8:5: schedules[1]: is the same schedule as schedules[0]`},
		{"  - \"@daily\"\n", `7:5: schedules[0]: must be a mapping with cron`},
		{"  - cron: \"@daily\"\n    when: now\n", `8:5: schedules[0].when: unknown key`},
	} {
		_, err := Parse([]byte(base + c.yaml + stages))
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v; want %q", c.yaml, err, c.want)
		}
	}
}
