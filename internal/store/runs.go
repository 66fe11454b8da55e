package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// runColsNullable are a run's columns (alias r) without its pipeline's name, read by runScan;
// every one may be NULL when the run comes from a LEFT JOIN.
const runColsNullable = `r.id, r.pipeline_id, r.number, r.revision, r.status, r.trigger_kind, r.triggered_by,
	r.variables, r.secret_variables, r.stage, r.cancel_requested, r.message, r.created_at, r.started_at, r.finished_at,
	r.git, r.concurrency_group, r.max_running, r.log_expired_at`

// runSelect reads p.name then runColsNullable.
const runSelect = "SELECT p.name, " + runColsNullable + " FROM runs r JOIN pipelines p ON p.id = r.pipeline_id"

// runScan receives runColsNullable.
type runScan struct {
	id, pipelineID, number, revision, stage, maxRunning sql.NullInt64
	status, trigger, triggeredBy, message, group        sql.NullString
	cancel                                              sql.NullBool
	variables                                           map[string]string
	secrets                                             []byte
	created                                             time.Time
	started, finished, logExpired                       *time.Time
	git                                                 *run.Git
}

func (s *runScan) dest() []any {
	return []any{&s.id, &s.pipelineID, &s.number, &s.revision, &s.status, &s.trigger, &s.triggeredBy,
		jsonMap{&s.variables}, &s.secrets, &s.stage, &s.cancel, &s.message,
		timeScan{&s.created}, nullTimeScan{&s.started}, nullTimeScan{&s.finished},
		gitScan{&s.git}, &s.group, &s.maxRunning, nullTimeScan{&s.logExpired}}
}

func (s *runScan) run() run.Run {
	return run.Run{
		ID:               s.id.Int64,
		PipelineID:       s.pipelineID.Int64,
		Number:           s.number.Int64,
		Revision:         s.revision.Int64,
		Status:           run.Status(s.status.String),
		Trigger:          run.Trigger(s.trigger.String),
		TriggeredBy:      s.triggeredBy.String,
		Variables:        s.variables,
		SecretVariables:  s.secrets,
		Stage:            int(s.stage.Int64),
		CancelRequested:  s.cancel.Bool,
		Message:          s.message.String,
		CreatedAt:        s.created,
		StartedAt:        s.started,
		FinishedAt:       s.finished,
		LogExpiredAt:     s.logExpired,
		Git:              s.git,
		ConcurrencyGroup: s.group.String,
		MaxRunning:       int(s.maxRunning.Int64),
	}
}

// gitRecord is how a run's run.Git is stored: a JSON object in runs.git. It has JSON names of
// its own, so that the stored form does not change with the API's, and it keeps
// CredentialsVar and StatusTokenVar, which the API never shows (variable names, not secrets).
// A run whose record has status_token_var reports its states to the code host: migration
// 0024's triggers look for it.
type gitRecord struct {
	RepoURL        string `json:"repo_url"`
	SHA            string `json:"sha"`
	Ref            string `json:"ref,omitempty"`
	Branch         string `json:"branch,omitempty"`
	Tag            string `json:"tag,omitempty"`
	Event          string `json:"event,omitempty"`
	Provider       string `json:"provider,omitempty"`
	Message        string `json:"message,omitempty"`
	Author         string `json:"author,omitempty"`
	CredentialsVar string `json:"credentials_var,omitempty"`
	StatusTokenVar string `json:"status_token_var,omitempty"`
}

// gitJSON is the value runs.git holds for g: NULL when g is nil, else gitRecord's JSON text.
func gitJSON(g *run.Git) (any, error) {
	if g == nil {
		return nil, nil
	}
	b, err := json.Marshal(gitRecord(*g))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// gitScan reads runs.git into **g: nil for NULL (a run without Git).
type gitScan struct{ g **run.Git }

func (s gitScan) Scan(v any) error {
	if v == nil {
		*s.g = nil
		return nil
	}
	b, err := textBytes(v, "a run's git")
	if err != nil {
		return err
	}
	var rec gitRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("store: read a run's git: %w", err)
	}
	g := run.Git(rec)
	*s.g = &g
	return nil
}

// containerRecord is how a job's run.Container is stored: a JSON object in jobs.container,
// with JSON names of its own, so that the stored form does not change with the API's. A field
// added to run.Container must be added here too (TestContainerRecordFields fails until it is;
// a field added to run.Service fails serviceRecord's conversion).
type containerRecord struct {
	Image    string          `json:"image"`
	User     string          `json:"user,omitempty"`
	Network  string          `json:"network,omitempty"`
	CPUs     float64         `json:"cpus,omitempty"`
	Memory   int64           `json:"memory,omitempty"`
	Pull     string          `json:"pull,omitempty"`
	Services []serviceRecord `json:"services,omitempty"`
}

// serviceRecord is a run.Service as containerRecord stores it.
type serviceRecord struct {
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	Env     map[string]string `json:"env,omitempty"`
	Command []string          `json:"command,omitempty"`
}

// containerJSON is the value jobs.container holds for c: NULL when c is nil, else
// containerRecord's JSON text.
func containerJSON(c *run.Container) (any, error) {
	if c == nil {
		return nil, nil
	}
	rec := containerRecord{Image: c.Image, User: c.User, Network: c.Network, CPUs: c.CPUs, Memory: c.Memory, Pull: c.Pull}
	for _, svc := range c.Services {
		rec.Services = append(rec.Services, serviceRecord(svc))
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// containerScan reads jobs.container into **c: nil for NULL (a job on the host).
type containerScan struct{ c **run.Container }

func (s containerScan) Scan(v any) error {
	if v == nil {
		*s.c = nil
		return nil
	}
	b, err := textBytes(v, "a job's container")
	if err != nil {
		return err
	}
	var rec containerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("store: read a job's container: %w", err)
	}
	c := &run.Container{Image: rec.Image, User: rec.User, Network: rec.Network, CPUs: rec.CPUs, Memory: rec.Memory, Pull: rec.Pull}
	for _, svc := range rec.Services {
		c.Services = append(c.Services, run.Service(svc))
	}
	*s.c = c
	return nil
}

// labelsJSON is the value jobs.runs_on holds for labels: NULL when there are none (the job
// goes to any runner), else their JSON object.
func labelsJSON(labels map[string]string) (any, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	return toJSON(labels)
}

// copyLabels is a copy of labels; nil when there are none, as labelsScan reads them.
func copyLabels(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return maps.Clone(labels)
}

// labelsScan reads jobs.runs_on into *m: nil for NULL.
type labelsScan struct{ m *map[string]string }

func (s labelsScan) Scan(v any) error {
	if v == nil {
		*s.m = nil
		return nil
	}
	return jsonMap(s).Scan(v)
}

// scanRun reads a row of runSelect.
func scanRun(row interface{ Scan(...any) error }) (run.Run, error) {
	var (
		name string
		rs   runScan
	)
	if err := row.Scan(append([]any{&name}, rs.dest()...)...); err != nil {
		return run.Run{}, err
	}
	r := rs.run()
	r.Pipeline = name
	return r, nil
}

// loadRun reads a run, with its jobs and steps when withJobs.
func loadRun(ctx context.Context, d db, id int64, withJobs bool) (run.Run, error) {
	r, err := scanRun(d.queryRow(ctx, runSelect+" WHERE r.id = ?", id))
	if err != nil || !withJobs {
		return r, err
	}
	r.Jobs, err = loadJobs(ctx, d, "j.run_id = ?", id)
	return r, err
}

const jobCols = `j.id, j.run_id, j.stage, j.stage_name, j.idx, j.name, j.status, j.timeout_ms, j.env,
	j.started_at, j.finished_at, j.message, j.attempts, j.retry_lost, j.container, j.runs_on, j.cancel_grace_ms`

// loadJobs reads the jobs that match where (on alias j) with their attempts and steps, in
// stage and index order: three queries however many jobs there are.
func loadJobs(ctx context.Context, d db, where string, args ...any) ([]run.Job, error) {
	return readJobs(ctx, d, true, where, args...)
}

// readJobs is loadJobs, reading the jobs' attempts only withAttempts.
func readJobs(ctx context.Context, d db, withAttempts bool, where string, args ...any) ([]run.Job, error) {
	rows, err := d.query(ctx, "SELECT "+jobCols+" FROM jobs j WHERE "+where+" ORDER BY j.stage, j.idx, j.id", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []run.Job
	byID := map[int64]int{}
	for rows.Next() {
		var (
			j         run.Job
			timeoutMS int64
			graceMS   int64
		)
		if err := rows.Scan(&j.ID, &j.RunID, &j.Stage, &j.StageName, &j.Index, &j.Name, &j.Status, &timeoutMS,
			jsonMap{&j.Env}, nullTimeScan{&j.StartedAt}, nullTimeScan{&j.FinishedAt}, &j.Message, &j.Attempt, &j.RetryLost,
			containerScan{&j.Container}, labelsScan{&j.RunsOn}, &graceMS); err != nil {
			return nil, err
		}
		j.Timeout = time.Duration(timeoutMS) * time.Millisecond
		j.CancelGrace = time.Duration(graceMS) * time.Millisecond
		byID[j.ID] = len(jobs)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(jobs) == 0 {
		return nil, nil
	}
	if withAttempts {
		if err := loadAttempts(ctx, d, jobs); err != nil {
			return nil, err
		}
	}
	srows, err := d.query(ctx, `SELECT s.id, s.job_id, s.idx, s.name, s.script, s.status, s.exit_code, s.started_at, s.finished_at
		FROM steps s JOIN jobs j ON j.id = s.job_id WHERE `+where+` ORDER BY s.job_id, s.idx, s.id`, args...)
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	for srows.Next() {
		var (
			st   run.Step
			code sql.NullInt64
		)
		if err := srows.Scan(&st.ID, &st.JobID, &st.Index, &st.Name, &st.Script, &st.Status, &code,
			nullTimeScan{&st.StartedAt}, nullTimeScan{&st.FinishedAt}); err != nil {
			return nil, err
		}
		st.ExitCode = intPtr(code)
		if i, ok := byID[st.JobID]; ok {
			jobs[i].Steps = append(jobs[i].Steps, st)
		}
	}
	return jobs, srows.Err()
}

// RunCreate stores a queued run with its jobs and steps in one transaction; its number is the
// pipeline's next (see createRun: unique, above every earlier run's). A Revision of 0 means the pipeline's current one. The
// run's first stage is the lowest Stage of its jobs; a run without jobs is stored as already
// succeeded, since nothing would ever claim it.
func (s *Store) RunCreate(ctx context.Context, p RunCreate) (run.Run, error) {
	var out run.Run
	err := s.write(ctx, func(tx db) error {
		var err error
		if p.Fire != nil {
			out, err = createScheduledRun(ctx, tx, s.numbers(tx), p)
		} else {
			out, err = createRun(ctx, tx, s.numbers(tx), p)
		}
		return err
	})
	if errors.Is(err, ErrFireTaken) {
		return run.Run{}, err
	}
	if err != nil {
		return run.Run{}, wrap("create run", err)
	}
	s.runsChanged(out.ID)
	return out, nil
}

// createRun is RunCreate inside the caller's write transaction. It numbers the run from the
// pipeline's counter (run_counters) through numbers (see Store.numbers) and returns the stored
// run with its jobs and steps, built from the values it inserted and the ids the inserts
// returned: nothing is read back.
//
// On PostgreSQL numbers is not tx: the number is taken in a statement of its own, committed at
// once, so concurrent runs of one pipeline never wait for each other's COMMIT (with the
// number taken in tx, the counter row stayed locked from the run's INSERT to COMMIT, and one
// pipeline's deliveries went one commit at a time). The price: a number whose transaction then
// fails is never used (a gap), and runs may become visible out of number order for the
// moments between taking a number and COMMIT (see RunSupersede). On SQLite, with its one
// writer, numbers is tx and nothing changes.
//
// The counter never goes below the pipeline's highest run number, so runs stored by other
// means (a restore, a seeded database) cannot make two runs share a number; numbers may have
// gaps, never repeats.
func createRun(ctx context.Context, tx, numbers db, p RunCreate) (run.Run, error) {
	nr, err := newRunRow(tx, p)
	if err != nil {
		return run.Run{}, err
	}
	if nr.oneStatement(tx) {
		if err := nr.reserve(ctx, numbers); err != nil {
			return run.Run{}, err
		}
		q, args := nr.inserts("")
		if _, err := tx.exec(ctx, "WITH "+q+" SELECT 1", args...); err != nil {
			return run.Run{}, err
		}
		return nr.r, nil
	}
	r := nr.r
	if err := insertRun(ctx, tx, numbers, &r, nr.vars, nr.finished, nr.git); err != nil {
		return run.Run{}, err
	}
	if len(p.Jobs) == 0 {
		return r, nil
	}
	if r.Jobs, err = insertJobs(ctx, tx, r.ID, p.Jobs, nr.envs, nr.containers, nr.runsOn); err != nil {
		return run.Run{}, err
	}
	return r, nil
}

// runRow is a run about to be stored: the run as RunCreate returns it, less what the database
// gives (number, ids, revision when 0, pipeline name), and its columns' stored forms.
type runRow struct {
	r          run.Run
	jobs       []run.Job // as RunCreate was given them
	vars       string
	envs       []string // each job's env as JSON
	containers []any    // each job's container (containerJSON)
	runsOn     []any    // each job's runs-on (labelsJSON)
	finished   any      // finished_at (and started_at): set for a run without jobs
	git        any
	nextSteps  int // how many steps the jobs have in all
	// jobIDs and stepIDs are reserved ids (reserve): jobIDs[i] for jobs[i]; stepIDs for the
	// steps in order, job by job.
	jobIDs, stepIDs []int64
}

// newRunRow checks p and builds its row; tx gives the dialect's time format.
func newRunRow(tx db, p RunCreate) (*runRow, error) {
	vars, err := toJSON(p.Variables)
	if err != nil {
		return nil, fmt.Errorf("variables: %w", err)
	}
	git, err := gitJSON(p.Git)
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	if p.MaxRunning < 0 {
		return nil, fmt.Errorf("max running %d: want 0 (no bound) or more", p.MaxRunning)
	}
	nr := &runRow{jobs: p.Jobs, vars: vars, git: git, envs: make([]string, len(p.Jobs)), containers: make([]any, len(p.Jobs)),
		runsOn: make([]any, len(p.Jobs))}
	for i, j := range p.Jobs {
		if nr.envs[i], err = toJSON(j.Env); err != nil {
			return nil, fmt.Errorf("env of job %q: %w", j.Name, err)
		}
		if nr.containers[i], err = containerJSON(j.Container); err != nil {
			return nil, fmt.Errorf("container of job %q: %w", j.Name, err)
		}
		if nr.runsOn[i], err = labelsJSON(j.RunsOn); err != nil {
			return nil, fmt.Errorf("runs-on of job %q: %w", j.Name, err)
		}
		nr.nextSteps += len(j.Steps)
	}
	at := now()
	nr.r = run.Run{
		PipelineID:       p.PipelineID,
		Revision:         p.Revision,
		Status:           run.Queued,
		Trigger:          p.Trigger,
		TriggeredBy:      p.TriggeredBy,
		Variables:        copyMap(p.Variables),
		SecretVariables:  bytes.Clone(p.SecretVariables),
		CreatedAt:        at,
		Git:              copyGit(p.Git),
		ConcurrencyGroup: p.ConcurrencyGroup,
		MaxRunning:       p.MaxRunning,
	}
	if len(p.Jobs) == 0 {
		nr.r.Status, nr.finished = run.Success, tx.ts(at)
		nr.r.StartedAt, nr.r.FinishedAt = &at, &at
	} else {
		nr.r.Stage = p.Jobs[0].Stage
		for _, j := range p.Jobs {
			nr.r.Stage = min(nr.r.Stage, j.Stage)
		}
	}
	return nr, nil
}

// oneStatementRows bounds the jobs and steps of a run stored in one statement (inserts), which
// keeps its arguments far below PostgreSQL's 65,535; a larger run takes insertJobs' batches.
const oneStatementRows = 256

// oneStatement says whether the run is stored by one statement of inserts (PostgreSQL: one
// round trip however many jobs and steps, which is most of a delivery's cost there).
func (nr *runRow) oneStatement(tx db) bool {
	return tx.pg && len(nr.jobs)+nr.nextSteps <= oneStatementRows
}

// reservePG takes, in one statement on numbers (the counter pool, committed at once), the run's
// number, the pipeline's revision and name, and ids for the run, its jobs and its steps from
// their identity sequences (which never roll back either), so that every INSERT of the run can
// be written before any runs.
var reservePG = `WITH n AS (` + nextRunNumberCounter + `) ` + reserveSelect("")

// reserveSelect is reservePG's SELECT, with more columns (each with its leading comma).
func reserveSelect(more string) string {
	return `SELECT n.last_number, p.revision, p.name, nextval('runs_id_seq'),
		COALESCE((SELECT string_agg(nextval('jobs_id_seq')::TEXT, ',') FROM generate_series(1, ?::INT)), ''),
		COALESCE((SELECT string_agg(nextval('steps_id_seq')::TEXT, ',') FROM generate_series(1, ?::INT)), '')` + more + `
	FROM n LEFT JOIN pipelines p ON p.id = ?`
}

// reserve sets the run's number, revision (when 0), pipeline name and the ids of the run, its
// jobs and its steps (reservePG). The jobs and steps are in r.Jobs afterwards, queued, in
// RunGet's order.
func (nr *runRow) reserve(ctx context.Context, numbers db) error {
	r := &nr.r
	_, err := nr.reserveBy(ctx, numbers, reservePG, []any{r.PipelineID, r.PipelineID, len(nr.jobs), nr.nextSteps, r.PipelineID})
	return err
}

// reserveBy is reserve by q, a form of reservePG with args, whose row may have more columns
// (scanned into more); found is false when q returned no row.
func (nr *runRow) reserveBy(ctx context.Context, numbers db, q string, args []any, more ...any) (found bool, err error) {
	r := &nr.r
	var (
		current       sql.NullInt64
		name          sql.NullString
		jobIDs, steps string
	)
	err = numbers.queryRow(ctx, q, args...).Scan(append([]any{&r.Number, &current, &name, &r.ID, &jobIDs, &steps}, more...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !name.Valid {
		return false, fmt.Errorf("pipeline %d: %w", r.PipelineID, ErrNotFound)
	}
	r.Pipeline = name.String
	if r.Revision == 0 {
		r.Revision = current.Int64
	}
	if nr.jobIDs, err = parseIDs(jobIDs, len(nr.jobs)); err != nil {
		return false, err
	}
	if nr.stepIDs, err = parseIDs(steps, nr.nextSteps); err != nil {
		return false, err
	}
	if len(nr.jobs) > 0 {
		r.Jobs = newJobs(r.ID, nr.jobs, nr.jobIDs, nr.stepIDs)
	}
	return true, nil
}

// parseIDs reads n ids from reservePG's comma-separated list, in increasing order.
func parseIDs(list string, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("reserve ids: want %d, got %q", n, list)
	}
	ids := make([]int64, n)
	for i, p := range parts {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reserve ids: %w", err)
		}
		ids[i] = id
	}
	slices.Sort(ids)
	return ids, nil
}

// inserts is the run's INSERTs as common table expressions of one statement ("r AS (INSERT …),
// j AS (…), s AS (…)"), after reserve, with their arguments. Rows referencing each other in one
// statement are fine: foreign keys are checked at its end. With a gate, the statement has a
// CTE of that name before these (see recordOne) and each INSERT inserts only when it has a row;
// the first row of each VALUES list is then typed, since VALUES under a SELECT do not take the
// columns' types.
func (nr *runRow) inserts(gate string) (string, []any) {
	guarded := gate != ""
	r := nr.r
	var q strings.Builder
	args := []any{r.ID, r.PipelineID, r.Number, r.Revision, r.Status, r.Trigger, r.TriggeredBy, nr.vars, r.SecretVariables,
		r.Stage, r.CreatedAt.UTC(), nr.finished, nr.finished, nr.git, r.ConcurrencyGroup, r.MaxRunning}
	runValues := "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, '', ?, ?, ?, ?, ?, ?"
	q.WriteString(`r AS (INSERT INTO runs (id, ` + runInsertCols + `) OVERRIDING SYSTEM VALUE `)
	if guarded {
		q.WriteString("SELECT " + runValues + " FROM " + gate + ")")
	} else {
		q.WriteString("VALUES (" + runValues + "))")
	}
	// rows writes n rows of VALUES, the first typed when guarded, and the guard.
	rows := func(n int, row, typed string, each func(i int)) {
		if guarded {
			q.WriteString("SELECT * FROM (")
		}
		q.WriteString("VALUES ")
		for i := range n {
			switch {
			case i > 0:
				q.WriteString(", " + row)
			case guarded:
				q.WriteString(typed)
			default:
				q.WriteString(row)
			}
			each(i)
		}
		if guarded {
			q.WriteString(") v WHERE EXISTS (SELECT 1 FROM " + gate + ")")
		}
		q.WriteString(")")
	}
	if len(nr.jobs) == 0 {
		return q.String(), args
	}
	q.WriteString(", j AS (INSERT INTO jobs (id, run_id, stage, stage_name, idx, name, status, timeout_ms, env, retry_lost, container, runs_on, cancel_grace_ms) OVERRIDING SYSTEM VALUE ")
	rows(len(nr.jobs), "(?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
		"(?::BIGINT, ?::BIGINT, ?::INTEGER, ?::TEXT, ?::INTEGER, ?::TEXT, 'queued', ?::BIGINT, ?::TEXT, ?::INTEGER, ?::TEXT, ?::TEXT, ?::BIGINT)",
		func(i int) {
			j := nr.jobs[i]
			args = append(args, nr.jobIDs[i], r.ID, j.Stage, j.StageName, j.Index, j.Name, j.Timeout.Milliseconds(), nr.envs[i], j.RetryLost, nr.containers[i], nr.runsOn[i], j.CancelGrace.Milliseconds())
		})
	if nr.nextSteps == 0 {
		return q.String(), args
	}
	type ref struct{ job, step int }
	steps := make([]ref, 0, nr.nextSteps)
	for i, j := range nr.jobs {
		for k := range j.Steps {
			steps = append(steps, ref{i, k})
		}
	}
	q.WriteString(", s AS (INSERT INTO steps (id, job_id, idx, name, script, status) OVERRIDING SYSTEM VALUE ")
	rows(len(steps), "(?, ?, ?, ?, ?, 'queued')", "(?::BIGINT, ?::BIGINT, ?::INTEGER, ?::TEXT, ?::TEXT, 'queued')",
		func(i int) {
			st := nr.jobs[steps[i].job].Steps[steps[i].step]
			args = append(args, nr.stepIDs[i], nr.jobIDs[steps[i].job], st.Index, st.Name, st.Script)
		})
	return q.String(), args
}

// runInsertCols are the columns insertRun and runRow.inserts give a new run (besides its id).
const runInsertCols = `pipeline_id, number, revision, status, trigger_kind, triggered_by, variables, secret_variables,
	stage, cancel_requested, message, created_at, started_at, finished_at, git, concurrency_group, max_running`

// nextRunNumber takes the pipeline's next run number: one more than the larger of its counter
// and its highest run number (an index look-up), so the counter heals itself. A pipeline's
// first run makes its counter row. The first %s is the dialect's two-argument maximum, the
// second more of RETURNING. Its parts: the INSERT's head, its row (two arguments: the pipeline
// twice) and its ON CONFLICT.
const (
	nextRunNumber       = nextRunNumberInto + "VALUES (" + nextRunNumberRow + ")" + nextRunNumberUpdate
	nextRunNumberInto   = `INSERT INTO run_counters AS c (pipeline_id, last_number) `
	nextRunNumberRow    = `?, COALESCE((SELECT MAX(number) FROM runs WHERE pipeline_id = ?), 0) + 1`
	nextRunNumberUpdate = `
	ON CONFLICT (pipeline_id) DO UPDATE
		SET last_number = %s(c.last_number, COALESCE((SELECT MAX(number) FROM runs WHERE pipeline_id = excluded.pipeline_id), 0)) + 1
	RETURNING last_number%s`
)

// withPipeline reads, besides the number, the pipeline's current revision and name.
const withPipeline = `, (SELECT revision FROM pipelines WHERE id = ?), (SELECT name FROM pipelines WHERE id = ?)`

var (
	nextRunNumberPG      = fmt.Sprintf(nextRunNumber, "GREATEST", withPipeline)
	nextRunNumberSQLite  = fmt.Sprintf(nextRunNumber, "MAX", withPipeline)
	nextRunNumberCounter = fmt.Sprintf(nextRunNumber, "GREATEST", "")
)

// numbers is where createRun takes run numbers for a write in tx: on PostgreSQL the async pool
// (outside tx, committed at once without waiting for the flush: the WAL is ordered, so a run
// that is durable makes the counter it used durable too, and a counter lost in a crash was
// used by no durable run), tx itself on SQLite.
func (s *Store) numbers(tx db) db {
	if s.async != nil {
		return db{q: s.async, pg: true}
	}
	return tx
}

// insertRun numbers r through numbers, stores it in tx and sets r.ID, r.Number, r.Revision
// (when 0) and r.Pipeline.
func insertRun(ctx context.Context, tx, numbers db, r *run.Run, vars string, finished, git any) error {
	q := nextRunNumberSQLite
	if numbers.pg {
		q = nextRunNumberPG
	}
	var (
		current sql.NullInt64
		name    sql.NullString
	)
	if err := numbers.queryRow(ctx, q, r.PipelineID, r.PipelineID, r.PipelineID, r.PipelineID).Scan(&r.Number, &current, &name); err != nil {
		return err
	}
	if !name.Valid { // deleted between the counter and here; the INSERT below would fail too
		return fmt.Errorf("pipeline %d: %w", r.PipelineID, ErrNotFound)
	}
	r.Pipeline = name.String
	if r.Revision == 0 {
		r.Revision = current.Int64
	}
	return tx.queryRow(ctx, `INSERT INTO runs (`+runInsertCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, '', ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.PipelineID, r.Number, r.Revision, r.Status, r.Trigger, r.TriggeredBy, vars, r.SecretVariables, r.Stage,
		tx.ts(r.CreatedAt), finished, finished, git, r.ConcurrencyGroup, r.MaxRunning).Scan(&r.ID)
}

// insertRows bounds the rows of one multi-row INSERT (and so the kinds of statement text the
// prepared-statement cache sees).
const insertRows = 32

// insertJobs stores a run's jobs and their steps, a few multi-row INSERTs in all, and returns
// them as RunGet reads them (newJobs).
func insertJobs(ctx context.Context, tx db, runID int64, in []run.Job, envs []string, containers, runsOn []any) ([]run.Job, error) {
	jobIDs := make([]int64, len(in))
	err := insertMany(ctx, tx, "INSERT INTO jobs (run_id, stage, stage_name, idx, name, status, timeout_ms, env, retry_lost, container, runs_on, cancel_grace_ms) VALUES ",
		"(?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)", len(in),
		func(i int) []any {
			j := in[i]
			return []any{runID, j.Stage, j.StageName, j.Index, j.Name, j.Timeout.Milliseconds(), envs[i], j.RetryLost, containers[i], runsOn[i], j.CancelGrace.Milliseconds()}
		},
		func(i int, id int64) { jobIDs[i] = id })
	if err != nil {
		return nil, err
	}
	type ref struct{ job, step int }
	var steps []ref
	for i, j := range in {
		for k := range j.Steps {
			steps = append(steps, ref{i, k})
		}
	}
	stepIDs := make([]int64, len(steps))
	err = insertMany(ctx, tx, "INSERT INTO steps (job_id, idx, name, script, status) VALUES ", "(?, ?, ?, ?, 'queued')", len(steps),
		func(i int) []any {
			st := in[steps[i].job].Steps[steps[i].step]
			return []any{jobIDs[steps[i].job], st.Index, st.Name, st.Script}
		},
		func(i int, id int64) { stepIDs[i] = id })
	if err != nil {
		return nil, err
	}
	return newJobs(runID, in, jobIDs, stepIDs), nil
}

// newJobs is a run's stored jobs as RunGet reads them — in stage and index order, steps in
// index order, every one queued — when in[i] got the id jobIDs[i] and the steps, in order job
// by job, got stepIDs.
func newJobs(runID int64, in []run.Job, jobIDs, stepIDs []int64) []run.Job {
	jobs := make([]run.Job, len(in))
	next := 0
	for i, j := range in {
		jobs[i] = run.Job{ID: jobIDs[i], RunID: runID, Stage: j.Stage, StageName: j.StageName, Index: j.Index, Name: j.Name,
			Status: run.Queued, Timeout: time.Duration(j.Timeout.Milliseconds()) * time.Millisecond,
			Env: copyMap(j.Env), RetryLost: j.RetryLost, Container: j.Container.Clone(),
			RunsOn: copyLabels(j.RunsOn), CancelGrace: time.Duration(j.CancelGrace.Milliseconds()) * time.Millisecond}
		if len(j.Steps) > 0 {
			jobs[i].Steps = make([]run.Step, len(j.Steps))
		}
		for k, st := range j.Steps {
			jobs[i].Steps[k] = run.Step{ID: stepIDs[next], JobID: jobIDs[i], Index: st.Index, Name: st.Name, Script: st.Script, Status: run.Queued}
			next++
		}
	}
	// RunGet's order: jobs by stage, index, id; steps by index, id (ids grow in insert order).
	sort.SliceStable(jobs, func(a, b int) bool {
		if jobs[a].Stage != jobs[b].Stage {
			return jobs[a].Stage < jobs[b].Stage
		}
		return jobs[a].Index < jobs[b].Index
	})
	for _, j := range jobs {
		sort.SliceStable(j.Steps, func(a, b int) bool { return j.Steps[a].Index < j.Steps[b].Index })
	}
	return jobs
}

// insertMany inserts n rows, insertRows at a time, each row's arguments from args, and hands
// each row's new id to setID. Ids are given out in the order of the VALUES rows on both
// databases, so the returned ids, sorted, are the rows' ids in order.
func insertMany(ctx context.Context, tx db, head, row string, n int, args func(i int) []any, setID func(i int, id int64)) error {
	for start := 0; start < n; start += insertRows {
		end := min(n, start+insertRows)
		var q strings.Builder
		q.WriteString(head)
		var all []any
		for i := start; i < end; i++ {
			if i > start {
				q.WriteString(", ")
			}
			q.WriteString(row)
			all = append(all, args(i)...)
		}
		q.WriteString(" RETURNING id")
		ids, err := queryIDs(ctx, tx, q.String(), all...)
		if err != nil {
			return err
		}
		if len(ids) != end-start {
			return fmt.Errorf("insert: %d rows returned %d ids", end-start, len(ids))
		}
		slices.Sort(ids)
		for i, id := range ids {
			setID(start+i, id)
		}
	}
	return nil
}

// queryIDs runs a query that returns one id per row.
func queryIDs(ctx context.Context, tx db, q string, args ...any) ([]int64, error) {
	return queryAll(ctx, tx, scanID, q, args...)
}

// copyMap is m as it reads back from a JSON column: a copy, never nil.
func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// copyGit is g as it reads back from runs.git.
func copyGit(g *run.Git) *run.Git {
	if g == nil {
		return nil
	}
	c := *g
	return &c
}

// RunGet returns a run with its jobs and their steps.
func (s *Store) RunGet(ctx context.Context, id int64) (run.Run, error) {
	var out run.Run
	err := s.read(ctx, func(tx db) error {
		var err error
		out, err = loadRun(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return run.Run{}, wrap("get run", err)
	}
	return out, nil
}

// RunList returns a page of a pipeline's runs, newest first, without jobs.
func (s *Store) RunList(ctx context.Context, pipelineID int64, p RunListParams) ([]run.Run, error) {
	limit := p.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 200:
		limit = 200
	}
	cond, args := runFilter(pipelineID, p)
	q, args := runSelect+cond+" ORDER BY r.number DESC LIMIT ?", append(args, limit)
	out, err := queryAll(ctx, s.reader(), func(row scanner, r *run.Run) (err error) {
		*r, err = scanRun(row)
		return err
	}, q, args...)
	if err != nil {
		return nil, wrap("list runs", err)
	}
	return out, nil
}

// RunStatus returns a run's status.
func (s *Store) RunStatus(ctx context.Context, id int64) (run.Status, error) {
	var st run.Status
	if err := s.reader().queryRow(ctx, "SELECT status FROM runs WHERE id = ?", id).Scan(&st); err != nil {
		return "", wrap("get run status", err)
	}
	return st, nil
}

// RunCancel cancels a run: a queued one at once (its jobs canceled, message kept); a running
// one is marked CancelRequested for the scheduler to stop; a finished one is left as it is.
// It returns the run after the change.
//
// A running run with no job running at that moment (between two stages) has nothing for the
// scheduler to stop, so it is canceled at once too, its queued jobs skipped. A second cancel of
// a running run keeps the first message.
func (s *Store) RunCancel(ctx context.Context, id int64, message string) (run.Run, error) {
	var out run.Run
	// Acknowledged, and job progress: a cancel stops work, so it goes before ingest.
	err := s.writeAs(ctx, acknowledged|jobProgress, func(tx db) error {
		var (
			status    run.Status
			requested bool
		)
		if err := tx.queryRow(ctx, "SELECT status, cancel_requested FROM runs WHERE id = ?"+tx.forUpdate(), id).Scan(&status, &requested); err != nil {
			return err
		}
		if err := cancelRun(ctx, tx, id, status, requested, message, now()); err != nil {
			return err
		}
		var err error
		out, err = loadRun(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return run.Run{}, wrap("cancel run", err)
	}
	s.runsChanged(id)
	if !out.Status.Terminal() {
		s.notifyCancel(ctx, id)
	}
	return out, nil
}

// notifyCancel tells every server that run id's cancel was requested, so the one running its
// jobs looks at once; a lost notification only costs the runner's next poll (AttemptStates).
func (s *Store) notifyCancel(ctx context.Context, id int64) {
	if err := s.Notify(ctx, TopicCancel, strconv.FormatInt(id, 10)); err != nil {
		s.logger.Warn("store: notify a cancel", "run", id, "err", err)
	}
}

// cancelRun is RunCancel's change to a run the caller has locked and read (status and
// cancel_requested): see RunCancel.
func cancelRun(ctx context.Context, tx db, id int64, status run.Status, requested bool, message string, at time.Time) error {
	switch status {
	case run.Queued:
		if err := skipQueuedJobs(ctx, tx, id, run.Canceled, at); err != nil {
			return err
		}
		return endRun(ctx, tx, id, run.Canceled, message, at)
	case run.Running:
		var running int
		if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM jobs WHERE run_id = ? AND status = 'running'", id).Scan(&running); err != nil {
			return err
		}
		if running == 0 {
			if err := skipQueuedJobs(ctx, tx, id, run.Skipped, at); err != nil {
				return err
			}
			return endRun(ctx, tx, id, run.Canceled, message, at)
		}
		if !requested {
			if _, err := tx.exec(ctx, `UPDATE runs SET cancel_requested = TRUE, message = ?
				WHERE id = ? AND status = 'running' AND NOT cancel_requested`, message, id); err != nil {
				return err
			}
		}
		// The runners holding the run's jobs see canceling at their next look (AttemptStates,
		// AttemptsRenew), on whichever node they run.
		_, err := tx.exec(ctx, `UPDATE attempts SET state = 'canceling' WHERE state = 'running'
			AND id IN (SELECT attempt_id FROM jobs WHERE run_id = ? AND status = 'running')`, id)
		return err
	}
	return nil
}

// SupersededMessage is the message RunSupersede gives the runs it cancels; %d is the number of
// the run that superseded them.
const SupersededMessage = "superseded by run #%d"

// RunSupersede applies a concurrency group's cancel_previous for the run runID: every older
// run (smaller number) of the same pipeline and group that is still queued or running is
// canceled as RunCancel cancels it, with the message "superseded by run #N" (N = runID's
// number). A queued one is canceled at once, its jobs canceled; a running one is marked
// CancelRequested (or canceled at once when no job of it is running), keeping an earlier
// cancel's message. Runs of other groups, newer runs and finished runs are left alone; a run
// with no group ("") supersedes nothing.
//
// runID itself is superseded the same way when the group already holds a newer run of the same
// revision (so made by the same definition, which asks for cancel_previous too): on PostgreSQL
// a run's number is taken before its transaction commits (see createRun), so the newer run may
// have become visible, and applied its own cancel_previous, before this one existed for it.
// The message then names the newest such run.
//
// It returns the ids of the runs that were running (older ones, and runID when it was
// superseded), in id order, so the caller can stop their processes (Scheduler.Cancel);
// ErrNotFound when runID does not exist.
func (s *Store) RunSupersede(ctx context.Context, runID int64) (running []int64, err error) {
	err = s.write(ctx, func(tx db) error {
		running = nil
		var (
			pipelineID, number, revision int64
			group                        string
		)
		if err := tx.queryRow(ctx, "SELECT pipeline_id, number, revision, concurrency_group FROM runs WHERE id = ?", runID).
			Scan(&pipelineID, &number, &revision, &group); err != nil {
			return err
		}
		if group == "" {
			return nil
		}
		var newest sql.NullInt64
		if err := tx.queryRow(ctx, `SELECT MAX(number) FROM runs
			WHERE pipeline_id = ? AND concurrency_group = ? AND number > ? AND revision = ?`,
			pipelineID, group, number, revision).Scan(&newest); err != nil {
			return err
		}
		// Lock order: runs in id order, as every other multi-run lock does.
		rows, err := tx.query(ctx, `SELECT id, status, cancel_requested FROM runs
			WHERE pipeline_id = ? AND concurrency_group = ? AND (number < ? OR id = ?) AND status IN ('queued', 'running')
			ORDER BY id`+tx.forUpdate(), pipelineID, group, number, runID)
		if err != nil {
			return err
		}
		type target struct {
			id        int64
			status    run.Status
			requested bool
		}
		var targets []target
		for rows.Next() {
			var o target
			if err := rows.Scan(&o.id, &o.status, &o.requested); err != nil {
				rows.Close()
				return err
			}
			targets = append(targets, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		at := now()
		for _, o := range targets {
			message := fmt.Sprintf(SupersededMessage, number)
			if o.id == runID {
				if !newest.Valid {
					continue
				}
				message = fmt.Sprintf(SupersededMessage, newest.Int64)
			}
			if err := cancelRun(ctx, tx, o.id, o.status, o.requested, message, at); err != nil {
				return err
			}
			if o.status == run.Running {
				running = append(running, o.id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("supersede runs", err)
	}
	s.runsChanged(runID) // the runs it canceled are of runID's pipeline
	for _, id := range running {
		s.notifyCancel(ctx, id)
	}
	return running, nil
}

// RunCountsByStatus counts runs by status, for metrics.
func (s *Store) RunCountsByStatus(ctx context.Context) (map[run.Status]int64, error) {
	rows, err := s.reader().query(ctx, "SELECT status, COUNT(*) FROM runs GROUP BY status")
	if err != nil {
		return nil, wrap("count runs", err)
	}
	defer rows.Close()
	out := map[run.Status]int64{}
	for rows.Next() {
		var (
			st run.Status
			n  int64
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count runs", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("count runs", err)
	}
	return out, nil
}

// skipQueuedJobs moves every queued job of a run to status (skipped or canceled) and their
// queued steps to skipped.
func skipQueuedJobs(ctx context.Context, tx db, runID int64, status run.Status, at time.Time) error {
	if _, err := tx.exec(ctx, `UPDATE steps SET status = 'skipped'
		WHERE status = 'queued' AND job_id IN (SELECT id FROM jobs WHERE run_id = ? AND status = 'queued')`, runID); err != nil {
		return err
	}
	var finished any
	if status == run.Canceled {
		finished = tx.ts(at)
	}
	_, err := tx.exec(ctx, "UPDATE jobs SET status = ?, finished_at = ? WHERE run_id = ? AND status = 'queued'",
		status, finished, runID)
	return err
}

// endRun moves a run to a final status, guarded by the statuses that may move there.
func endRun(ctx context.Context, tx db, runID int64, status run.Status, message string, at time.Time) error {
	in, args := statusIn(run.From(status))
	n, err := tx.execN(ctx, "UPDATE runs SET status = ?, message = ?, finished_at = ? WHERE id = ? AND status IN "+in,
		append([]any{status, message, tx.ts(at), runID}, args...)...)
	if err != nil {
		return err
	}
	if n == 0 {
		return transitionError(ctx, tx, "run", runID, status)
	}
	return nil
}

// statusIn is "(?, ?…)" and its arguments, for a guarded UPDATE.
func statusIn(ss []run.Status) (string, []any) {
	args := make([]any, len(ss))
	for i, s := range ss {
		args[i] = string(s)
	}
	return "(" + placeholders(len(ss)) + ")", args
}

// transitionError explains a guarded UPDATE of a run, job or step that touched no row:
// ErrNotFound when the record is gone, else ErrConflict with a *run.ErrTransition.
func transitionError(ctx context.Context, tx db, what string, id int64, to run.Status) error {
	table := map[string]string{"run": "runs", "job": "jobs", "step": "steps"}[what]
	var from run.Status
	err := tx.queryRow(ctx, "SELECT status FROM "+table+" WHERE id = ?", id).Scan(&from)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %d: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %w", ErrConflict, &run.ErrTransition{What: what, ID: id, From: from, To: to})
}
