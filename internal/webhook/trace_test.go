package webhook

import (
	"encoding/json"
	"testing"
)

func TestTrace(t *testing.T) {
	t.Parallel()
	var tr Trace
	tr.Add("token", true, "trigger of pipeline %q", "hello")
	tr.Add("rate", false, "over %d per second", 20)
	got, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"step":"token","ok":true,"detail":"trigger of pipeline \"hello\""},{"step":"rate","ok":false,"detail":"over 20 per second"}]`
	if string(got) != want {
		t.Errorf("trace = %s, want %s", got, want)
	}
}
