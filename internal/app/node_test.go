package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

func nodeConfig(data, name string, ttl time.Duration) config.Config {
	return config.Config{Data: data, NodeName: name, LeaseTTL: ttl, Addr: "127.0.0.1:8080", Version: "v9"}
}

// TestStartNode: a server registers its node and heartbeats; a second server on the same data
// folder, or under a name a live server holds, is refused; the next start on the data folder
// succeeds the previous one at once, knowing its instance.
func TestStartNode(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t, "sqlite")
	ctx := t.Context()
	log := storetest.Logger(t)
	data, other := t.TempDir(), t.TempDir()

	// 3 s: heartbeats every second, so a loaded machine never lets the name lapse mid-test.
	first, stop, err := startNode(ctx, st, nodeConfig(data, "n1", 3*time.Second), log)
	if err != nil {
		t.Fatalf("startNode: %v", err)
	}
	if first.Name != "n1" || len(first.Instance) != 32 || first.Previous != "" {
		t.Errorf("first start = %+v; want n1, a 32-digit instance, no previous one", first)
	}
	nodes, err := st.NodeList(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Instance != first.Instance || nodes[0].Version != "v9" ||
		nodes[0].Addr != "127.0.0.1:8080" || nodes[0].TTL != 3*time.Second {
		t.Fatalf("NodeList = %+v, %v; want n1 as registered", nodes, err)
	}
	started := nodes[0].StartedAt
	deadline := time.Now().Add(30 * time.Second)
	for {
		ns, err := st.NodeList(ctx)
		if err == nil && ns[0].HeartbeatAt.After(started) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat within 30 s: %+v, %v", ns, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, _, err := startNode(ctx, st, nodeConfig(data, "n1", time.Minute), log); err == nil ||
		!strings.Contains(err.Error(), "another flowd server is running on the data folder") {
		t.Errorf("a second start on the same data folder = %v; want a refusal", err)
	}
	if _, _, err := startNode(ctx, st, nodeConfig(other, "n1", time.Minute), log); err == nil ||
		!strings.Contains(err.Error(), `another live server uses the node name "n1"`) || !strings.Contains(err.Error(), "--node-name") {
		t.Errorf("a start under n1 from another data folder = %v; want a refusal naming --node-name", err)
	}

	stop()
	stop() // twice is harmless
	b, err := os.ReadFile(filepath.Join(data, instanceFile))
	if err != nil || strings.TrimSpace(string(b)) != first.Instance {
		t.Errorf("%s = %q, %v; want the first instance", instanceFile, b, err)
	}
	// The row still looks live (its heartbeat is fresh), as after kill -9: the successor on the
	// same data folder starts anyway.
	second, stop2, err := startNode(ctx, st, nodeConfig(data, "n1", time.Minute), log)
	if err != nil {
		t.Fatalf("the restart on the same data folder: %v", err)
	}
	defer stop2()
	if second.Previous != first.Instance || second.Instance == first.Instance {
		t.Errorf("restart = %+v; want a new instance succeeding %s", second, first.Instance)
	}
	if ns, err := st.NodeList(ctx); err != nil || ns[0].Instance != second.Instance || ns[0].Kind != store.NodeServer {
		t.Errorf("NodeList after the restart = %+v, %v; want the new instance", ns, err)
	}
}

func TestNodeAddr(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"127.0.0.1:0":    "127.0.0.1",
		":8080":          host + ":8080",
		"0.0.0.0:9000":   host + ":9000",
	} {
		if got := nodeAddr(in); got != want {
			t.Errorf("nodeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
