package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSecondServerOnSQLite: a second `flowd serve` on the SQLite database a running server uses
// (another data folder, another port) refuses to start, saying what is wrong and what to do,
// and changes nothing: the first server keeps answering. Once the first has stopped, the
// second starts.
func TestSecondServerOnSQLite(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	first := startServer(t, data, dsn)
	admin := first.token("admin", adminPassword)

	other := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowdBin, "serve", "--addr", "127.0.0.1:0", "--data", other,
		"--database", dsn, "--step-user", stepUIDs(other))
	cmd.Env = append(baseEnv(t), "FLOWD_ADMIN_PASSWORD="+adminPassword)
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("a second server on the same SQLite database: %v (want exit status 1)\n%s", err, out)
	}
	for _, want := range []string{
		"another flowd server (pid ", "is using the SQLite database " + strings.TrimPrefix(dsn, "sqlite:"),
		"a SQLite database serves one server at a time", "Stop the other server first", "PostgreSQL",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "listening on") {
		t.Errorf("the second server listened before refusing:\n%s", out)
	}
	if code := first.api(admin, "GET", "/api/v1/pipelines", nil, nil); code != 200 {
		t.Errorf("the first server answers %d after the refusal, want 200", code)
	}

	first.stop()
	second := startServer(t, other, dsn)
	second.token("admin", adminPassword)
	second.stop()
}
