package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The kinds of node.
const (
	NodeServer = "server" // a flowd serve process
	NodeAgent  = "agent"  // a remote flowd agent (next issue)
)

// Node is a server or an agent sharing the database, as its row in nodes says. A node keeps
// its name across restarts; each start is a new Instance (random), so attempts name the
// process that holds them and a restarted node can tell its previous instance's from its own.
type Node struct {
	Name      string
	Kind      string // NodeServer or NodeAgent
	Instance  string
	Version   string
	Addr      string // where it serves, for people; "" when it serves nothing
	StartedAt time.Time
	// HeartbeatAt is the database's time of its last heartbeat.
	HeartbeatAt time.Time
	// JobsHeld counts the attempts in state running or canceling held by the node (any
	// instance); NodeList fills it.
	JobsHeld int
	// Live: the last heartbeat is within the TTL given to NodeList or NodeRegister, by the
	// database's clock.
	Live bool
}

// NodeRegister records n as the running instance of the node n.Name: it inserts the row or
// replaces it, with started_at and heartbeat_at the database's current time, and returns the
// row as it was before (the zero Node when there was none; its Live says whether its last
// heartbeat was within ttl).
//
// A name is held by one live instance at a time: when the row belongs to another instance
// whose heartbeat is within ttl, NodeRegister changes nothing and returns that row with an
// error wrapping ErrConflict, unless that instance is replaces, the instance the caller knows
// it succeeds (a server's previous start on the same data folder, killed before its heartbeat
// went stale). The check and the change are one transaction, so two starts racing for a name
// cannot both win, and a refused start never takes the row from the live one.
func (s *Store) NodeRegister(ctx context.Context, n Node, ttl time.Duration, replaces string) (prev Node, err error) {
	if n.Kind != NodeServer && n.Kind != NodeAgent {
		return Node{}, fmt.Errorf("store: register node: kind %q is neither %q nor %q", n.Kind, NodeServer, NodeAgent)
	}
	err = s.write(ctx, func(tx db) error {
		prev = Node{}
		inserted, err := tx.execN(ctx, `INSERT INTO nodes (name, kind, instance, version, addr, started_at, heartbeat_at)
			VALUES (?, ?, ?, ?, ?, `+tx.clock()+`, `+tx.clock()+`) ON CONFLICT (name) DO NOTHING`,
			n.Name, n.Kind, n.Instance, n.Version, n.Addr)
		if err != nil || inserted == 1 {
			return err
		}
		// The row exists (and, on PostgreSQL, a racing insert has committed): lock and judge it.
		since, arg := tx.clockMinus(ttl)
		err = tx.queryRow(ctx, `SELECT name, kind, instance, version, addr, started_at, heartbeat_at,
				heartbeat_at > `+since+` FROM nodes WHERE name = ?`+tx.forUpdate(), arg, n.Name).
			Scan(&prev.Name, &prev.Kind, &prev.Instance, &prev.Version, &prev.Addr,
				timeScan{&prev.StartedAt}, timeScan{&prev.HeartbeatAt}, &prev.Live)
		if err != nil {
			return err
		}
		if prev.Live && prev.Instance != n.Instance && prev.Instance != replaces {
			return fmt.Errorf("%w: node %q is held by the live instance %s", ErrConflict, n.Name, prev.Instance)
		}
		_, err = tx.exec(ctx, `UPDATE nodes SET kind = ?, instance = ?, version = ?, addr = ?,
				started_at = `+tx.clock()+`, heartbeat_at = `+tx.clock()+` WHERE name = ?`,
			n.Kind, n.Instance, n.Version, n.Addr, n.Name)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return prev, wrap("register node", err)
		}
		return Node{}, wrap("register node", err)
	}
	return prev, nil
}

// NodeHeartbeat sets the heartbeat of the node name's instance to the database's current
// time. ErrConflict: the row now belongs to another instance (this one's heartbeat went stale
// and another process registered the name); ErrNotFound: the row is gone.
func (s *Store) NodeHeartbeat(ctx context.Context, name, instance string) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "UPDATE nodes SET heartbeat_at = "+tx.clock()+" WHERE name = ? AND instance = ?", name, instance)
		if err != nil || n == 1 {
			return err
		}
		var holder string
		if err := tx.queryRow(ctx, "SELECT instance FROM nodes WHERE name = ?", name).Scan(&holder); err != nil {
			return err
		}
		return fmt.Errorf("%w: node %q is now held by the instance %s", ErrConflict, name, holder)
	})
	return wrap("node heartbeat", err)
}

// NodeList returns every node, servers first, then by name, each with the jobs it holds and
// whether its last heartbeat is within ttl by the database's clock.
func (s *Store) NodeList(ctx context.Context, ttl time.Duration) ([]Node, error) {
	r := s.reader()
	since, arg := r.clockMinus(ttl)
	ns, err := queryAll(ctx, r, scanNode, `SELECT n.name, n.kind, n.instance, n.version, n.addr,
			n.started_at, n.heartbeat_at, n.heartbeat_at > `+since+`,
			(SELECT COUNT(*) FROM attempts a WHERE a.node = n.name AND a.state IN ('running', 'canceling'))
		FROM nodes n ORDER BY n.kind DESC, n.name`, arg)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	return ns, nil
}

func scanNode(row scanner, n *Node) error {
	return row.Scan(&n.Name, &n.Kind, &n.Instance, &n.Version, &n.Addr,
		timeScan{&n.StartedAt}, timeScan{&n.HeartbeatAt}, &n.Live, &n.JobsHeld)
}
