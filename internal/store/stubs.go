package store

// STUBS: every function here is replaced by the real one in its noun's file. Delete each stub
// as its real body lands; this file must be gone when the store is done.

import (
	"context"
	"log/slog"

	"github.com/flowd/flowd/internal/run"
)

// Store is flowd's one store over SQLite or PostgreSQL.
type Store struct{}

// Open connects to dsn ("sqlite:PATH" or "postgres://…"), applies the migrations and returns
// the store.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) { panic("stub") }

// Close closes the database.
func (s *Store) Close() error { panic("stub") }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { panic("stub") }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { panic("stub") }

// UserCreate adds a user; ErrConflict when the name is taken.
func (s *Store) UserCreate(ctx context.Context, username, passwordHash string, admin bool) (User, error) {
	panic("stub")
}

// UserGet finds a user by name.
func (s *Store) UserGet(ctx context.Context, username string) (User, error) { panic("stub") }

// UserGetByID finds a user by id.
func (s *Store) UserGetByID(ctx context.Context, id int64) (User, error) { panic("stub") }

// UserList lists users by name.
func (s *Store) UserList(ctx context.Context) ([]User, error) { panic("stub") }

// UserUpdate changes a user.
func (s *Store) UserUpdate(ctx context.Context, id int64, u UserUpdate) (User, error) { panic("stub") }

// UserDelete removes a user, their tokens and memberships (runs keep the name).
func (s *Store) UserDelete(ctx context.Context, id int64) error { panic("stub") }

// UserCount counts users.
func (s *Store) UserCount(ctx context.Context) (int, error) { panic("stub") }

// TokenCreate stores a token's hash.
func (s *Store) TokenCreate(ctx context.Context, userID int64, name string, hash []byte) (Token, error) {
	panic("stub")
}

// TokenUser finds the user of a token hash and records its use; ErrNotFound when unknown.
func (s *Store) TokenUser(ctx context.Context, hash []byte) (User, Token, error) { panic("stub") }

// TokenList lists a user's tokens.
func (s *Store) TokenList(ctx context.Context, userID int64) ([]Token, error) { panic("stub") }

// TokenDelete removes one of a user's tokens.
func (s *Store) TokenDelete(ctx context.Context, userID, tokenID int64) error { panic("stub") }

// PipelineCreate stores revision 1 and makes the creator the pipeline's admin, in one
// transaction; ErrConflict when the name is taken.
func (s *Store) PipelineCreate(ctx context.Context, name, source string, secrets []byte, creatorID int64) (Pipeline, error) {
	panic("stub")
}

// PipelineUpdate stores a new revision.
func (s *Store) PipelineUpdate(ctx context.Context, id int64, source string, secrets []byte, userID int64) (Pipeline, error) {
	panic("stub")
}

// PipelineGet returns a pipeline at its newest revision.
func (s *Store) PipelineGet(ctx context.Context, name string) (Pipeline, error) { panic("stub") }

// PipelineRevision returns a pipeline as it was at a revision.
func (s *Store) PipelineRevision(ctx context.Context, pipelineID, revision int64) (Pipeline, error) {
	panic("stub")
}

// PipelineList lists pipelines by name with their newest run: all of them, or those userID is
// a member of.
func (s *Store) PipelineList(ctx context.Context, userID int64, all bool) ([]PipelineSummary, error) {
	panic("stub")
}

// PipelineDelete removes a pipeline with its revisions, members, runs and logs.
func (s *Store) PipelineDelete(ctx context.Context, id int64) error { panic("stub") }

// MemberSet gives a user a role on a pipeline (insert or update).
func (s *Store) MemberSet(ctx context.Context, pipelineID, userID int64, role string) error {
	panic("stub")
}

// MemberDelete removes a membership; ErrNotFound when there is none.
func (s *Store) MemberDelete(ctx context.Context, pipelineID, userID int64) error { panic("stub") }

// MemberList lists a pipeline's members by name.
func (s *Store) MemberList(ctx context.Context, pipelineID int64) ([]Member, error) { panic("stub") }

// MemberRole is a user's role on a pipeline, "" when not a member.
func (s *Store) MemberRole(ctx context.Context, pipelineID, userID int64) (string, error) {
	panic("stub")
}

// RunCreate stores a queued run with its jobs and steps in one transaction; its number is the
// pipeline's previous highest plus one.
func (s *Store) RunCreate(ctx context.Context, p RunCreate) (run.Run, error) { panic("stub") }

// RunGet returns a run with its jobs and their steps.
func (s *Store) RunGet(ctx context.Context, id int64) (run.Run, error) { panic("stub") }

// RunList returns a page of a pipeline's runs, newest first, without jobs.
func (s *Store) RunList(ctx context.Context, pipelineID int64, p RunListParams) ([]run.Run, error) {
	panic("stub")
}

// RunStatus returns a run's status.
func (s *Store) RunStatus(ctx context.Context, id int64) (run.Status, error) { panic("stub") }

// RunCancel cancels a run: a queued one at once (its jobs canceled, message kept); a running
// one is marked CancelRequested for the scheduler to stop; a finished one is left as it is.
// It returns the run after the change.
func (s *Store) RunCancel(ctx context.Context, id int64, message string) (run.Run, error) {
	panic("stub")
}

// RunCountsByStatus counts runs by status, for metrics.
func (s *Store) RunCountsByStatus(ctx context.Context) (map[run.Status]int64, error) {
	panic("stub")
}

// JobQueueDepth counts queued jobs whose stage may run now, for metrics.
func (s *Store) JobQueueDepth(ctx context.Context) (int64, error) { panic("stub") }

// JobClaim takes the oldest ready job (status queued, of its run's current stage, run queued or
// running and not cancel-requested), moves it to running and its run to running; ErrNotFound
// when none is ready.
func (s *Store) JobClaim(ctx context.Context) (Claim, error) { panic("stub") }

// StepStart moves a step from queued to running.
func (s *Store) StepStart(ctx context.Context, stepID int64) error { panic("stub") }

// StepFinish moves a step to a terminal status, recording the exit code when there is one.
func (s *Store) StepFinish(ctx context.Context, stepID int64, status run.Status, exitCode *int) error {
	panic("stub")
}

// JobFinish moves a running job to a terminal status (its steps still queued become skipped)
// and advances its run in the same transaction. It returns the run after.
func (s *Store) JobFinish(ctx context.Context, jobID int64, status run.Status, message string) (run.Run, error) {
	panic("stub")
}

// RecoverInterrupted finishes, after a restart, every job left running by a server that stopped:
// the job and its running steps become failed, and its run failed with message; a line with
// message is appended to each such run's log. It returns the ids of the runs it failed.
func (s *Store) RecoverInterrupted(ctx context.Context, message string) ([]int64, error) {
	panic("stub")
}

// LogAppend stores chunks in one transaction; Seq is assigned per run, in order.
func (s *Store) LogAppend(ctx context.Context, chunks []run.LogChunk) error { panic("stub") }

// LogRead returns up to limit chunks of a run with Seq > afterSeq, in order.
func (s *Store) LogRead(ctx context.Context, runID, afterSeq int64, limit int) ([]run.LogChunk, error) {
	panic("stub")
}
