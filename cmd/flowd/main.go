// Command flowd is the one flowd binary: `flowd serve` runs the server, and the other commands
// are clients of its REST API (docs/api.md). `flowd --help` lists them all.
package main

import (
	"context"
	"os"

	"github.com/flowd/flowd/internal/executor"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == executor.ShimCommand {
		// The server starts every step through its own binary (see executor.ShimMain); this
		// runs before anything else, with the empty environment the server gives it.
		executor.RunShim(os.Args[2:])
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
