package githost

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/internal/pipeline"
)

// fuzzEvents are the event header of each provider's events that Parse reads, tried in turn.
var fuzzEvents = []struct {
	header, value string
}{
	{"X-GitHub-Event", "push"}, {"X-GitHub-Event", "pull_request"}, {"X-GitHub-Event", "ping"},
	{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Event", "Tag Push Hook"}, {"X-Gitlab-Event", "Merge Request Hook"},
	{"X-Gitlab-Event", "System Hook"}, {"Codeup-Event", "Push Hook"},
	{"X-Gitea-Event", "push"}, {"X-Gitea-Event", "pull_request"}, {"X-Gogs-Event", "push"}, {"X-Gogs-Event", "pull_request"},
	{"X-Event-Key", "repo:push"}, {"X-Event-Key", "pullrequest:created"},
	{"X-Event-Key", "repo:refs_changed"}, {"X-Event-Key", "pr:opened"}, {"X-Event-Key", "diagnostics:ping"},
}

// FuzzParse feeds Parse arbitrary bodies under every event it reads (seeded with the
// fixtures): it must never panic, must return an event or an error, and what it returns must
// survive Match and ChangedFiles.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzEvents {
			f.Add(uint8(i), body, false)
		}
	}
	f.Add(uint8(0), []byte(`payload=%7B%7D`), true)
	f.Add(uint8(3), []byte(`{"commits":[{"timestamp":5}]}`), false)
	srcs := []*pipeline.Source{
		{URL: "https://github.com/acme/app"},
		{URL: "/srv/git/app.git", Branches: []string{"**"}, Tags: []string{"v*"}, Paths: []string{"src/**"},
			Events: []string{"push", "tag", "pull_request"}},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte, form bool) {
		ev := fuzzEvents[int(which)%len(fuzzEvents)]
		h := hdr(ev.header, ev.value)
		if form {
			h.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		p, ok := Detect(h)
		if !ok {
			t.Fatalf("Detect refused %v", h)
		}
		e, err := Parse(p, h, body)
		if (e == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of an event and an error", e, err)
		}
		if e == nil {
			return
		}
		_ = e.ChangedFiles()
		for _, src := range srcs {
			if ok, reason := Match(src, e); !ok && reason == "" {
				t.Fatalf("Match refused %+v without a reason", e)
			}
		}
		for _, u := range e.RepoURLs {
			_ = NormalizeRepoURL(u)
		}
	})
}
