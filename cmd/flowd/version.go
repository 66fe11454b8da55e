package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; otherwise it comes from
// the module's build information.
var version = ""

func (c *cli) cmdVersion(ctx context.Context, args []string) int {
	f := newFlags("version", "flowd version", "Print the version of flowd and the Go version it was built with.", 0, 0)
	if _, code := c.parse(f, args); code >= 0 {
		return code
	}
	fmt.Fprintf(c.stdout, "flowd %s (%s, %s/%s)\n", binaryVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// binaryVersion is version, else the module's version from the build information, else
// "(devel)".
func binaryVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
