package api_test

import (
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

func TestNodeList(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		dsn := storetest.DSN(t, dialect)
		st, err := store.Open(t.Context(), dsn, storetest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		e := newEnvWithStore(t, st)
		root, alice := e.user("root", true), e.user("alice", false)
		ctx := t.Context()
		for _, n := range []store.Node{
			{Name: "beta", Kind: store.NodeServer, Instance: "i-beta", Version: "v1.0.0", Addr: "beta:8080", TTL: time.Minute},
			{Name: "alpha", Kind: store.NodeServer, Instance: "i-alpha", Version: "v1.0.1", Addr: "alpha:8080", TTL: 30 * time.Second},
		} {
			if _, err := e.st.NodeRegister(ctx, n, ""); err != nil {
				t.Fatal(err)
			}
		}
		// beta stopped an hour ago.
		raw, age := "pgx", "UPDATE nodes SET heartbeat_at = heartbeat_at - interval '1 hour' WHERE name = 'beta'"
		if dialect == "sqlite" {
			raw, age = "sqlite", "UPDATE nodes SET heartbeat_at = heartbeat_at - 3600000000000 WHERE name = 'beta'"
			dsn = strings.TrimPrefix(dsn, "sqlite:")
		}
		db, err := sql.Open(raw, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, age); err != nil {
			t.Fatal(err)
		}

		r := e.call("GET", "/api/v1/nodes", alice.Token, nil)
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "only global administrators may list the nodes") {
			t.Errorf("GET /api/v1/nodes as a user = %s; want 403 saying only global administrators may list the nodes", r)
		}
		if r := e.call("GET", "/api/v1/nodes", "", nil); r.Status != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/nodes anonymously = %s; want 401", r)
		}

		r = e.call("GET", "/api/v1/nodes", root.Token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /api/v1/nodes as admin = %s", r)
		}
		var out struct{ Nodes []client.Node }
		r.json(t, &out)
		if len(out.Nodes) != 2 {
			t.Fatalf("GET /api/v1/nodes = %s; want alpha and beta", r)
		}
		a, b := out.Nodes[0], out.Nodes[1]
		if a.Name != "alpha" || a.Kind != "server" || a.Instance != "i-alpha" || a.Version != "v1.0.1" || a.Addr != "alpha:8080" || a.LeaseTTL != 30 ||
			!a.Live || a.JobsHeld != 0 || a.StartedAt.IsZero() || a.HeartbeatAt.IsZero() || a.HeartbeatAge < 0 || a.HeartbeatAge >= 30 {
			t.Errorf("first node = %+v; want alpha, live, with its fields", a)
		}
		if b.Name != "beta" || b.Live || b.HeartbeatAge < 3600 || b.HeartbeatAge > 7200 {
			t.Errorf("second node = %+v; want beta, not live, its heartbeat an hour old", b)
		}
	})
}
