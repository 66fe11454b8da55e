// Command flowd is the one flowd binary: `flowd serve` runs the server, and the other commands
// are clients of its REST API (docs/api.md). `flowd --help` lists them all.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
