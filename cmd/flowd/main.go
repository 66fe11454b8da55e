// Command flowd is the one flowd binary: `flowd serve` runs the server, and the other commands
// are clients of its REST API (docs/api.md). `flowd --help` lists them all.
package main

import (
	"context"
	"os"

	"github.com/flowd/flowd/internal/executor"
)

func main() {
	if executor.IsHelperCommand(os.Args) {
		// The server starts steps through its own binary (executor.ShimMain per step, or once,
		// executor.LauncherMain); this runs before anything else, with the empty environment
		// the server gives it.
		executor.RunHelperCommand(os.Args)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
