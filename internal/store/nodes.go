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
	NodeAgent  = "agent"  // a remote flowd agent (see agents.go)
)

// Node is a server or an agent sharing the database, as its row in nodes says. A node keeps
// its name across restarts; each start is a new Instance (random), so attempts name the
// process that holds them and a restarted node can tell its previous instance's from its own.
type Node struct {
	Name     string
	Kind     string // NodeServer or NodeAgent
	Instance string
	Version  string
	Addr     string // where it serves, for people; "" when it serves nothing
	// Executors and Labels are a server's slots (--executors, --labels): how many jobs it runs
	// at once and the labels a job's runs-on must match to run there. 0 and none for an agent
	// (its Agent has its capacity and labels).
	Executors int
	Labels    map[string]string
	// TTL is the node's own lease TTL (a server's --lease-ttl): it heartbeats every TTL/3 and
	// is gone once its last heartbeat is older than TTL. Each node is judged by its own TTL,
	// so nodes started with different TTLs agree on who is live.
	TTL       time.Duration
	StartedAt time.Time
	// HeartbeatAt is the database's time of its last heartbeat.
	HeartbeatAt time.Time
	// HeartbeatAge is how long ago that was by the database's clock (NodeList fills it), so
	// that "10s ago" does not depend on the clock of whoever shows it.
	HeartbeatAge time.Duration
	// JobsHeld counts the attempts in state running or canceling held by the node (any
	// instance); NodeList fills it.
	JobsHeld int
	// Live: the last heartbeat is within TTL, by the database's clock.
	Live bool
	// Agent is, for a node of kind agent, its agent row (labels, capacity, paused); NodeList
	// fills it. nil for a server.
	Agent *Agent
}

// NodeJob is a job a node runs: an attempt it holds.
type NodeJob struct {
	Node      string
	RunID     int64
	RunNumber int64
	Pipeline  string
	JobID     int64
	Stage     string
	Job       string
	Attempt   int
	Runner    string
	State     string
}

// NodeRegister records n as the running instance of the node n.Name: it inserts the row or
// replaces it, with started_at and heartbeat_at the database's current time, and returns the
// row as it was before, as NodeList would have listed it (the zero Node when there was none).
//
// A name is held by one live instance at a time: when the row belongs to another instance
// whose heartbeat is within that instance's TTL, NodeRegister changes nothing and returns that
// row with an error wrapping ErrConflict, unless that instance is replaces, the instance the
// caller knows it succeeds (a server's previous start on the same data folder, killed before
// its heartbeat went stale). The check and the change are one transaction, so two starts
// racing for a name cannot both win, and a refused start never takes the row from the live one.
func (s *Store) NodeRegister(ctx context.Context, n Node, replaces string) (prev Node, err error) {
	if n.Kind != NodeServer && n.Kind != NodeAgent {
		return Node{}, fmt.Errorf("store: register node: kind %q is neither %q nor %q", n.Kind, NodeServer, NodeAgent)
	}
	if n.TTL < time.Millisecond {
		return Node{}, fmt.Errorf("store: register node: TTL %v is under a millisecond", n.TTL)
	}
	ttl := n.TTL.Milliseconds()
	labels, err := toJSON(n.Labels)
	if err != nil {
		return Node{}, wrap("register node", err)
	}
	err = s.write(ctx, func(tx db) error {
		prev = Node{}
		inserted, err := tx.execN(ctx, `INSERT INTO nodes (name, kind, instance, version, addr, lease_ttl_ms, executors, labels, started_at, heartbeat_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, `+tx.clock()+`, `+tx.clock()+`) ON CONFLICT (name) DO NOTHING`,
			n.Name, n.Kind, n.Instance, n.Version, n.Addr, ttl, n.Executors, labels)
		if err != nil || inserted == 1 {
			return err
		}
		// The row exists (and, on PostgreSQL, a racing insert has committed): lock and judge it.
		err = scanNode(tx.queryRow(ctx, `SELECT `+nodeColumns(tx)+` FROM nodes n WHERE n.name = ?`+tx.forUpdate(), n.Name), &prev)
		if err != nil {
			return err
		}
		if prev.Live && prev.Instance != n.Instance && prev.Instance != replaces {
			return fmt.Errorf("%w: node %q is held by the live instance %s", ErrConflict, n.Name, prev.Instance)
		}
		_, err = tx.exec(ctx, `UPDATE nodes SET kind = ?, instance = ?, version = ?, addr = ?, lease_ttl_ms = ?, executors = ?, labels = ?,
				started_at = `+tx.clock()+`, heartbeat_at = `+tx.clock()+` WHERE name = ?`,
			n.Kind, n.Instance, n.Version, n.Addr, ttl, n.Executors, labels, n.Name)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return prev, wrap("register node", err)
		}
		return Node{}, wrap("register node", err)
	}
	s.Changed(TopicNodes, "")
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
// whether it is live.
func (s *Store) NodeList(ctx context.Context) ([]Node, error) {
	r := s.reader()
	ns, err := queryAll(ctx, r, scanNode, `SELECT `+nodeColumns(r)+` FROM nodes n ORDER BY n.kind DESC, n.name`)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	agents, err := queryAll(ctx, r, scanAgent,
		"SELECT "+agentCols+" FROM agents a JOIN nodes n ON n.name = a.name AND n.kind = 'agent' ORDER BY a.registered_at")
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	for i := range ns {
		for _, a := range agents { // the latest registered wins, should two tokens' agents share a name
			if a.Name == ns[i].Name && ns[i].Kind == NodeAgent {
				ns[i].Agent = &a
			}
		}
	}
	return ns, nil
}

// NodeJobs returns the jobs of every live attempt (running or canceling), oldest first, each
// with the node that holds it.
func (s *Store) NodeJobs(ctx context.Context) ([]NodeJob, error) {
	out, err := queryAll(ctx, s.reader(), func(row scanner, j *NodeJob) error {
		return row.Scan(&j.Node, &j.RunID, &j.RunNumber, &j.Pipeline, &j.JobID, &j.Stage, &j.Job, &j.Attempt, &j.Runner, &j.State)
	}, `SELECT a.node, r.id, r.number, p.name, j.id, j.stage_name, j.name, a.number, a.runner, a.state
		FROM attempts a JOIN jobs j ON j.id = a.job_id JOIN runs r ON r.id = j.run_id JOIN pipelines p ON p.id = r.pipeline_id
		WHERE a.state IN `+liveStates+` ORDER BY a.id`)
	if err != nil {
		return nil, wrap("list node jobs", err)
	}
	return out, nil
}

// nodeColumns are the columns scanNode reads from nodes n: the row, the age of its heartbeat
// (nanoseconds) and whether that is within its TTL, both by the database's clock, and the
// attempts it holds.
func nodeColumns(d db) string {
	age := d.clock() + " - n.heartbeat_at"
	live := "n.heartbeat_at > " + d.clock() + " - n.lease_ttl_ms * 1000000"
	if d.pg {
		age = "CAST(EXTRACT(EPOCH FROM now() - n.heartbeat_at) * 1000000000 AS BIGINT)"
		live = "n.heartbeat_at > now() - n.lease_ttl_ms * interval '1 millisecond'"
	}
	return `n.name, n.kind, n.instance, n.version, n.addr, n.lease_ttl_ms, n.executors, n.labels, n.started_at, n.heartbeat_at,
		` + age + `, ` + live + `,
		(SELECT COUNT(*) FROM attempts a WHERE a.node = n.name AND a.state IN ('running', 'canceling'))`
}

func scanNode(row scanner, n *Node) error {
	var ttl int64
	err := row.Scan(&n.Name, &n.Kind, &n.Instance, &n.Version, &n.Addr, &ttl, &n.Executors, jsonMap{&n.Labels},
		timeScan{&n.StartedAt}, timeScan{&n.HeartbeatAt}, &n.HeartbeatAge, &n.Live, &n.JobsHeld)
	n.TTL = time.Duration(ttl) * time.Millisecond
	return err
}
