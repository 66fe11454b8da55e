package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Build agents (docs/agent-protocol.md). An agent token is a secret a global admin creates;
// every `flowd agent` process authenticates with one and registers under a name: a row of
// agents per token and name, kept across the agent's restarts, and the node of kind agent of
// that name, whose instance is the agent process's current start. The attempts an agent claims
// carry its name as their node and that instance, as a server's do, so leases, fencing and the
// rescuer treat them alike.

// AgentToken is an agent token as stored (the secret itself is never stored, only its hash).
type AgentToken struct {
	ID   int64
	Name string
	// Labels limits the labels its agents may give (an agent's label must be here with the
	// same value); empty: any.
	Labels    map[string]string
	CreatedBy string
	CreatedAt time.Time
	RevokedAt *time.Time
	// Agents counts the agents registered with it (AgentTokenList fills it).
	Agents int
}

// Agent is one registered agent.
type Agent struct {
	ID       int64
	TokenID  int64
	Token    string // its token's name
	Name     string
	Labels   map[string]string
	Capacity int
	Version  string
	Paused   bool
	// Instance is the agent process's current instance (its node row's), which its attempts
	// carry.
	Instance     string
	RegisteredAt time.Time
}

// AgentTokenCreate stores a new agent token's hash; ErrConflict when the name is taken.
func (s *Store) AgentTokenCreate(ctx context.Context, name string, labels map[string]string, hash []byte, createdBy string) (AgentToken, error) {
	t := AgentToken{Name: name, Labels: labels, CreatedBy: createdBy, CreatedAt: now()}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	js, err := toJSON(t.Labels)
	if err != nil {
		return AgentToken{}, fmt.Errorf("store: create agent token: %w", err)
	}
	err = s.write(ctx, func(tx db) error {
		return tx.queryRow(ctx, `INSERT INTO agent_tokens (name, token_hash, labels, created_by, created_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, name, hash, js, createdBy, tx.ts(t.CreatedAt)).Scan(&t.ID)
	})
	if err != nil {
		return AgentToken{}, wrap("create agent token", err)
	}
	s.Changed(TopicNodes, "")
	return t, nil
}

const agentTokenCols = "t.id, t.name, t.labels, t.created_by, t.created_at, t.revoked_at"

func scanAgentToken(row scanner, t *AgentToken) error {
	return row.Scan(&t.ID, &t.Name, jsonMap{&t.Labels}, &t.CreatedBy, timeScan{&t.CreatedAt}, nullTimeScan{&t.RevokedAt})
}

// AgentTokenList returns every agent token, revoked ones included, by name, with how many
// agents registered with each.
func (s *Store) AgentTokenList(ctx context.Context) ([]AgentToken, error) {
	out, err := queryAll(ctx, s.reader(), func(row scanner, t *AgentToken) error {
		return row.Scan(&t.ID, &t.Name, jsonMap{&t.Labels}, &t.CreatedBy, timeScan{&t.CreatedAt}, nullTimeScan{&t.RevokedAt}, &t.Agents)
	}, "SELECT "+agentTokenCols+", (SELECT COUNT(*) FROM agents a WHERE a.token_id = t.id) FROM agent_tokens t ORDER BY t.name")
	if err != nil {
		return nil, wrap("list agent tokens", err)
	}
	return out, nil
}

// AgentTokenFind returns the token whose hash is hash (SHA-256 of the secret), compared once
// more in constant time; ErrNotFound when there is none. A revoked token is returned with
// RevokedAt set: the caller refuses it.
func (s *Store) AgentTokenFind(ctx context.Context, hash []byte) (AgentToken, error) {
	var (
		t      AgentToken
		stored []byte
	)
	err := s.reader().queryRow(ctx, "SELECT "+agentTokenCols+", t.token_hash FROM agent_tokens t WHERE t.token_hash = ?", hash).Scan(
		&t.ID, &t.Name, jsonMap{&t.Labels}, &t.CreatedBy, timeScan{&t.CreatedAt}, nullTimeScan{&t.RevokedAt}, &stored)
	if err == nil && subtle.ConstantTimeCompare(stored, hash) != 1 {
		err = ErrNotFound
	}
	if err != nil {
		return AgentToken{}, wrap("find agent token", err)
	}
	return t, nil
}

// AgentTokenRevoke revokes the token named name (its agents' next calls are refused) and
// settles at once the live attempts of its agents: each is moved to canceling and rescued
// (its job canceled; see AttemptsRescue), since the agent can no longer report it. It returns
// the token and what was rescued; ErrNotFound for an unknown name. Revoking a revoked token
// changes nothing but rescues what is still live.
func (s *Store) AgentTokenRevoke(ctx context.Context, name string) (AgentToken, []Rescued, error) {
	var t AgentToken
	err := s.write(ctx, func(tx db) error {
		err := scanAgentToken(tx.queryRow(ctx, "SELECT "+agentTokenCols+" FROM agent_tokens t WHERE t.name = ?"+tx.forUpdate(), name), &t)
		if err != nil {
			return err
		}
		if t.RevokedAt == nil {
			at := now()
			t.RevokedAt = &at
			if _, err := tx.exec(ctx, "UPDATE agent_tokens SET revoked_at = ? WHERE id = ?", tx.ts(at), t.ID); err != nil {
				return err
			}
		}
		_, err = tx.exec(ctx, "UPDATE attempts SET state = 'canceling' WHERE state = 'running' AND node IN (SELECT name FROM agents WHERE token_id = ?)", t.ID)
		return err
	})
	if err != nil {
		return AgentToken{}, nil, wrap("revoke agent token", err)
	}
	s.Changed(TopicNodes, "")
	var out []Rescued
	for {
		done, err := s.rescue(ctx, "a.node IN (SELECT name FROM agents WHERE token_id = ?)", []any{t.ID}, "stopped: its agent token was revoked")
		out = append(out, done...)
		if err != nil || len(done) < RescueBatch {
			return t, out, err
		}
	}
}

// AgentRegister says who registers: see Store.AgentRegister.
type AgentRegister struct {
	TokenID  int64
	Name     string
	Instance string // random per start of the agent process
	Labels   map[string]string
	Capacity int
	Version  string
	// TTL is the node's heartbeat TTL (the server's lease TTL).
	TTL time.Duration
}

// AgentRegister records agent p.Name of token p.TokenID (inserted, or updated: labels,
// capacity, version; paused is kept) and its node of kind agent with instance p.Instance, in
// one transaction, and returns the agent. An agent's name is its node's name, so it is unique
// in the installation: a name held by a server or by an agent of another token is refused
// with ErrConflict. The caller then rescues the attempts of the agent's earlier instances
// (AttemptsRescueInstance).
func (s *Store) AgentRegister(ctx context.Context, p AgentRegister) (Agent, error) {
	labels, err := toJSON(p.Labels)
	if err != nil {
		return Agent{}, fmt.Errorf("store: register agent: %w", err)
	}
	a := Agent{TokenID: p.TokenID, Name: p.Name, Labels: p.Labels, Capacity: p.Capacity, Version: p.Version, Instance: p.Instance}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	err = s.write(ctx, func(tx db) error {
		var (
			kind  string
			other int64
		)
		err := tx.queryRow(ctx, "SELECT kind FROM nodes WHERE name = ?"+tx.forUpdate(), p.Name).Scan(&kind)
		switch {
		case err == nil && kind != NodeAgent:
			return fmt.Errorf("%w: the name %q is a server's", ErrConflict, p.Name)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		err = tx.queryRow(ctx, "SELECT id FROM agents WHERE name = ? AND token_id <> ? LIMIT 1", p.Name, p.TokenID).Scan(&other)
		switch {
		case err == nil:
			return fmt.Errorf("%w: the name %q is an agent's of another token", ErrConflict, p.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		err = tx.queryRow(ctx, `INSERT INTO agents (token_id, name, labels, capacity, version, registered_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (token_id, name) DO UPDATE SET labels = excluded.labels, capacity = excluded.capacity,
				version = excluded.version, registered_at = excluded.registered_at
			RETURNING id, paused, registered_at`,
			p.TokenID, p.Name, labels, p.Capacity, p.Version, tx.ts(now())).Scan(&a.ID, &a.Paused, timeScan{&a.RegisteredAt})
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO nodes (name, kind, instance, version, addr, lease_ttl_ms, started_at, heartbeat_at)
			VALUES (?, 'agent', ?, ?, '', ?, `+tx.clock()+`, `+tx.clock()+`)
			ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, version = excluded.version,
				lease_ttl_ms = excluded.lease_ttl_ms, heartbeat_at = excluded.heartbeat_at,
				started_at = CASE WHEN nodes.instance = excluded.instance THEN nodes.started_at ELSE excluded.started_at END`,
			p.Name, p.Instance, p.Version, max(p.TTL.Milliseconds(), 1))
		return err
	})
	if err != nil {
		return Agent{}, wrap("register agent", err)
	}
	s.Changed(TopicNodes, "")
	return a, nil
}

const agentCols = `a.id, a.token_id, (SELECT t.name FROM agent_tokens t WHERE t.id = a.token_id), a.name, a.labels, a.capacity, a.version, a.paused, a.registered_at, COALESCE(n.instance, '')`

func scanAgent(row scanner, a *Agent) error {
	return row.Scan(&a.ID, &a.TokenID, &a.Token, &a.Name, jsonMap{&a.Labels}, &a.Capacity, &a.Version, &a.Paused,
		timeScan{&a.RegisteredAt}, &a.Instance)
}

// AgentGet returns agent id; ErrNotFound when there is none.
func (s *Store) AgentGet(ctx context.Context, id int64) (Agent, error) {
	var a Agent
	err := scanAgent(s.reader().queryRow(ctx, "SELECT "+agentCols+" FROM agents a LEFT JOIN nodes n ON n.name = a.name AND n.kind = 'agent' WHERE a.id = ?", id), &a)
	if err != nil {
		return Agent{}, wrap("get agent", err)
	}
	return a, nil
}

// AgentList returns every agent by name.
func (s *Store) AgentList(ctx context.Context) ([]Agent, error) {
	out, err := queryAll(ctx, s.reader(), scanAgent,
		"SELECT "+agentCols+" FROM agents a LEFT JOIN nodes n ON n.name = a.name AND n.kind = 'agent' ORDER BY a.name, a.id")
	if err != nil {
		return nil, wrap("list agents", err)
	}
	return out, nil
}

// AgentPause sets whether the agents named name (one per token that has one) are paused: a
// paused agent claims nothing. ErrNotFound when no agent has the name.
func (s *Store) AgentPause(ctx context.Context, name string, paused bool) error {
	err := s.write(ctx, func(tx db) error {
		n, err := tx.execN(ctx, "UPDATE agents SET paused = ? WHERE name = ?", paused, name)
		if err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
	if err == nil {
		s.Changed(TopicNodes, "")
	}
	return wrap("pause agent", err)
}

// AgentSeen sets the heartbeat of the node of agent name's instance to the database's time: an
// agent waiting for work is live. It changes nothing when the node is held by another
// instance.
func (s *Store) AgentSeen(ctx context.Context, name, instance string) error {
	err := s.writeRelaxed(ctx, func(tx db) error {
		_, err := tx.exec(ctx, "UPDATE nodes SET heartbeat_at = "+tx.clock()+" WHERE name = ? AND instance = ? AND kind = 'agent'", name, instance)
		return err
	})
	return wrap("agent heartbeat", err)
}

// AgentRunners returns the runners ("<agent>/<slot>") of agent name's live attempts.
func (s *Store) AgentRunners(ctx context.Context, name string) ([]string, error) {
	out, err := queryAll(ctx, s.reader(), func(row scanner, r *string) error { return row.Scan(r) },
		"SELECT runner FROM attempts WHERE node = ? AND state IN "+liveStates, name)
	if err != nil {
		return nil, wrap("list agent runners", err)
	}
	return out, nil
}

// AgentAttempt is an attempt as an agent's per-attempt call sees it.
type AgentAttempt struct {
	ID, JobID, RunID int64
	Node             string
	State            run.AttemptState
	JobStatus        run.Status
	LogLength        int64
}

// AgentAttemptGet returns attempt id when token is its attempt token (compared in constant
// time on the stored hash) and it is held by an agent of agent token tokenID; ErrNotFound
// otherwise.
func (s *Store) AgentAttemptGet(ctx context.Context, tokenID, id int64, token string) (AgentAttempt, error) {
	var (
		a     AgentAttempt
		hash  []byte
		owner sql.NullInt64
	)
	err := s.reader().queryRow(ctx, `SELECT a.id, a.job_id, j.run_id, a.node, a.state, j.status, a.log_length, a.token_hash,
			(SELECT g.token_id FROM agents g WHERE g.name = a.node AND g.token_id = ?)
		FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?`, tokenID, id).Scan(
		&a.ID, &a.JobID, &a.RunID, &a.Node, &a.State, &a.JobStatus, &a.LogLength, &hash, &owner)
	if err != nil {
		return AgentAttempt{}, wrap("get attempt", err)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(hash, sum[:]) != 1 || !owner.Valid {
		return AgentAttempt{}, wrap("get attempt", ErrNotFound)
	}
	return a, nil
}

// AgentHeartbeat renews attempt id's lease to the database's now() + ttl and the heartbeat of
// its node, in one transaction, and returns its state; ErrFenced when it is no longer live.
func (s *Store) AgentHeartbeat(ctx context.Context, id int64, ttl time.Duration) (run.AttemptState, error) {
	var state run.AttemptState
	err := s.writeRelaxed(ctx, func(tx db) error {
		var node, instance string
		err := tx.queryRow(ctx, "UPDATE attempts SET heartbeat_at = "+tx.clock()+", expires_at = "+tx.dbLater()+
			" WHERE id = ? AND state IN "+liveStates+" RETURNING state, node, instance", ttl.Microseconds(), id).Scan(&state, &node, &instance)
		if errors.Is(err, sql.ErrNoRows) {
			return &FencedError{Attempts: []int64{id}}
		}
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, "UPDATE nodes SET heartbeat_at = "+tx.clock()+" WHERE name = ? AND instance = ? AND kind = 'agent'", node, instance)
		return err
	})
	if err != nil {
		return "", wrap("agent heartbeat", err)
	}
	return state, nil
}

// LogGapError is AttemptLogAppend's error for bytes that start past the attempt's stored log:
// Length is where to send from.
type LogGapError struct{ Length int64 }

func (e *LogGapError) Error() string {
	return fmt.Sprintf("the attempt's log holds %d bytes: send from there", e.Length)
}

// maxLogChunk is the largest log chunk AttemptLogAppend stores (as logs.MaxChunk).
const maxLogChunk = 64 << 10

// AttemptLogAppend stores data as the attempt's log bytes from offset on, appending only at
// the length stored so far, L, and returns the length after: bytes before L were stored
// already and are skipped (a resend); an offset past L stores nothing and returns a
// *LogGapError with L. The bytes go in as log chunks of the attempt's job, tagged with the
// attempt, cut at line ends where they can be (at most maxLogChunk each), and the attempt's
// length and SHA-256 state move on in the same transaction. ErrFenced when the attempt is not
// its job's live attempt.
func (s *Store) AttemptLogAppend(ctx context.Context, id, offset int64, data []byte) (int64, error) {
	var length int64
	err := s.writeRelaxed(ctx, func(tx db) error {
		jobID, err := fence(ctx, tx, id)
		if err != nil {
			return err
		}
		var (
			runID int64
			state []byte
		)
		if err := tx.queryRow(ctx, "SELECT j.run_id, a.log_length, a.log_sha FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?", id).Scan(
			&runID, &length, &state); err != nil {
			return err
		}
		if offset > length {
			return &LogGapError{Length: length}
		}
		skip := length - offset
		if skip >= int64(len(data)) {
			return nil
		}
		data = data[skip:]
		h, err := logHash(state)
		if err != nil {
			return err
		}
		h.Write(data)
		if state, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return err
		}
		at := now()
		var chunks []run.LogChunk
		for _, piece := range run.SplitLog(data, maxLogChunk) {
			chunks = append(chunks, run.LogChunk{RunID: runID, JobID: jobID, Attempt: id, Data: piece, At: at})
		}
		if err := appendLogs(ctx, tx, chunks); err != nil {
			return err
		}
		length += int64(len(data))
		_, err = tx.exec(ctx, "UPDATE attempts SET log_length = ?, log_sha = ? WHERE id = ?", length, state, id)
		return err
	})
	if err != nil {
		var gap *LogGapError
		if errors.As(err, &gap) {
			return gap.Length, err
		}
		return 0, wrap("append attempt log", err)
	}
	return length, nil
}

// AttemptLogSum returns the length of attempt id's stored log and its SHA-256.
func (s *Store) AttemptLogSum(ctx context.Context, id int64) (int64, [sha256.Size]byte, error) {
	var (
		length int64
		state  []byte
		sum    [sha256.Size]byte
	)
	if err := s.reader().queryRow(ctx, "SELECT log_length, log_sha FROM attempts WHERE id = ?", id).Scan(&length, &state); err != nil {
		return 0, sum, wrap("read attempt log sum", err)
	}
	h, err := logHash(state)
	if err != nil {
		return 0, sum, fmt.Errorf("store: read attempt log sum: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return length, sum, nil
}

// AttemptLogReset drops every log chunk of attempt id and sets its stored length back to 0, so
// its runner sends the whole log again; ErrFenced when it is not its job's live attempt.
func (s *Store) AttemptLogReset(ctx context.Context, id int64) error {
	err := s.writeRelaxed(ctx, func(tx db) error {
		if _, err := fence(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "DELETE FROM log_chunks WHERE attempt_id = ?", id); err != nil {
			return err
		}
		_, err := tx.exec(ctx, "UPDATE attempts SET log_length = 0, log_sha = NULL WHERE id = ?", id)
		return err
	})
	return wrap("reset attempt log", err)
}

// logHash is the SHA-256 state stored as state (nil: nothing hashed yet).
func logHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("the stored log checksum state is unreadable: %w", err)
	}
	return h, nil
}

// LogSum is the length and SHA-256 of an attempt's whole log, as its runner counted them.
type LogSum struct {
	Length int64
	SHA256 [sha256.Size]byte
}

// LogSumError is JobComplete's error when the attempt's stored log is not JobEnd.Log: Length is
// what is stored; Mismatch says the length is right but the checksum is not (the stored bytes
// differ from the runner's).
type LogSumError struct {
	Length   int64
	Mismatch bool
}

func (e *LogSumError) Error() string {
	if e.Mismatch {
		return fmt.Sprintf("the attempt's stored log (%d bytes) does not have the checksum given", e.Length)
	}
	return fmt.Sprintf("the attempt's stored log holds %d bytes, not the length given", e.Length)
}

// checkLogSum compares attempt id's stored log with want.
func checkLogSum(ctx context.Context, tx db, id int64, want LogSum) error {
	var (
		length int64
		state  []byte
	)
	if err := tx.queryRow(ctx, "SELECT log_length, log_sha FROM attempts WHERE id = ?", id).Scan(&length, &state); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return &FencedError{Attempts: []int64{id}}
		}
		return err
	}
	if length != want.Length {
		return &LogSumError{Length: length}
	}
	h, err := logHash(state)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), want.SHA256[:]) != 1 {
		return &LogSumError{Length: length, Mismatch: true}
	}
	return nil
}

// AgentRescuePrevious rescues at once the live attempts of agent name held by another
// instance than instance: the agent restarted (registered again), so the process that ran them
// is gone. It returns what it rescued.
func (s *Store) AgentRescuePrevious(ctx context.Context, name, instance string) ([]Rescued, error) {
	var out []Rescued
	for {
		done, err := s.rescue(ctx, "a.node = ? AND a.instance <> ?", []any{name, instance},
			"stopped: its agent was restarted while the job ran")
		out = append(out, done...)
		if err != nil || len(done) < RescueBatch {
			return out, err
		}
	}
}
