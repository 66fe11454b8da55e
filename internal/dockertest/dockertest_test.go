package dockertest

import (
	"context"
	"strings"
	"testing"
)

// TestImage: the imported image has busybox's applets on PATH and the folders steps use.
func TestImage(t *testing.T) {
	c := Client(t)
	ctx := context.Background()
	inspect, err := c.ImageInspect(ctx, Image)
	if err != nil {
		t.Fatalf("inspect %s after Client: %v", Image, err)
	}
	if env := strings.Join(inspect.Config.Env, " "); !strings.Contains(env, "PATH=/bin") {
		t.Errorf("image env = %q, want PATH=/bin", env)
	}
	if inspect.Size < 500_000 {
		t.Errorf("image size = %d bytes: busybox is missing", inspect.Size)
	}
}
