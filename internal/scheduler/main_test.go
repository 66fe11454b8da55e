package scheduler

import (
	"os"
	"testing"

	"github.com/flowd/flowd/internal/executor"
)

func TestMain(m *testing.M) {
	if executor.IsHelperCommand(os.Args) { // the test binary is the steps' shim
		executor.RunHelperCommand(os.Args)
	}
	os.Exit(m.Run())
}

// testShim is the test binary itself, which TestMain turns into the step shim.
func testShim(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
