package run

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTransitions(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Status]bool{
		{Queued, Running}: true, {Queued, Canceled}: true, {Queued, Skipped}: true, {Queued, Failed}: true,
		{Running, Success}: true, {Running, Failed}: true, {Running, Canceled}: true,
	}
	all := []Status{Queued, Running, Success, Failed, Canceled, Skipped}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[[2]Status{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
		if from.Terminal() == (from == Queued || from == Running) {
			t.Errorf("%s.Terminal() = %v", from, from.Terminal())
		}
	}
	if got := From(Canceled); len(got) != 2 {
		t.Errorf("From(canceled) = %v, want queued and running", got)
	}
}

func TestRunJSONGroupsStages(t *testing.T) {
	t.Parallel()
	r := Run{ID: 1, Status: Failed, Jobs: []Job{
		{Stage: 0, StageName: "build", Name: "a", Status: Success},
		{Stage: 1, StageName: "test", Name: "b", Status: Failed},
		{Stage: 1, StageName: "test", Name: "c", Status: Success},
		{Stage: 2, StageName: "deploy", Name: "d", Status: Skipped},
	}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Variables map[string]string
		Stages    []struct {
			Name, Status string
			Jobs         []struct{ Name string }
		}
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Variables == nil || len(out.Stages) != 3 || len(out.Stages[1].Jobs) != 2 ||
		out.Stages[1].Status != "failed" || out.Stages[2].Status != "skipped" || out.Stages[0].Status != "success" {
		t.Fatalf("run JSON: %s", b)
	}
	if strings.Contains(string(b), "SecretVariables") || strings.Contains(string(b), "secret_variables") {
		t.Fatalf("sealed secrets in the run JSON: %s", b)
	}
}
