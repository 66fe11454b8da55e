package store

import (
	"context"
	"errors"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Fire outcomes: what became of a schedule's fire time (ScheduleFire.Outcome).
const (
	FireStarted = "started" // a run was created (RunID)
	FireRefused = "refused" // no run: the owner may not run the pipeline, or it cannot run here
	FireFailed  = "failed"  // no run: its commit or variables could not be resolved
)

// ErrFireTaken is RunCreate's answer when the run's fire time (RunCreate.Fire) is already
// recorded: another server (or an earlier tick) acted on it; no run was created.
var ErrFireTaken = errors.New("store: the schedule's fire time is already recorded")

// Fire is one fire time of a pipeline's schedule.
type Fire struct {
	PipelineID int64
	Key        string    // pipeline.Schedule.Key
	Title      string    // pipeline.Schedule.Title
	At         time.Time // the fire time
}

// ScheduleFire is a fire time some server acted on, and what came of it.
type ScheduleFire struct {
	Fire
	RunID      int64 // 0 when no run was created (or it was deleted)
	RunNumber  int64
	Outcome    string // FireStarted, FireRefused, FireFailed
	Message    string // why, for refused and failed fires
	RecordedAt time.Time
}

// insertFire records f with outcome and message inside tx, unless its fire time is already
// recorded: then it reports false and changes nothing.
func insertFire(ctx context.Context, tx db, f Fire, outcome, message string, now time.Time) (bool, error) {
	n, err := tx.execN(ctx, `INSERT INTO schedule_fires (pipeline_id, schedule_key, fire_at, title, outcome, message, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline_id, schedule_key, fire_at) DO NOTHING`,
		f.PipelineID, f.Key, tx.ts(f.At.UTC().Truncate(time.Second)), f.Title, outcome, message, tx.ts(now))
	return n == 1, err
}

// createScheduledRun is createRun for a run with a fire time: the fire is recorded in the same
// transaction, so a fire time makes one run however many servers try (ErrFireTaken for the
// others).
func createScheduledRun(ctx context.Context, tx, numbers db, p RunCreate) (run.Run, error) {
	ok, err := insertFire(ctx, tx, *p.Fire, FireStarted, "", time.Now())
	if err != nil {
		return run.Run{}, err
	}
	if !ok {
		return run.Run{}, ErrFireTaken
	}
	r, err := createRun(ctx, tx, numbers, p)
	if err != nil {
		return run.Run{}, err
	}
	_, err = tx.exec(ctx, `UPDATE schedule_fires SET run_id = ? WHERE pipeline_id = ? AND schedule_key = ? AND fire_at = ?`,
		r.ID, p.Fire.PipelineID, p.Fire.Key, tx.ts(p.Fire.At.UTC().Truncate(time.Second)))
	return r, err
}

// ScheduleFireRecord records a fire time that made no run (outcome FireRefused or FireFailed,
// message says why and what to do). It reports false when the fire time was already
// recorded: another server acted on it.
func (s *Store) ScheduleFireRecord(ctx context.Context, f Fire, outcome, message string) (bool, error) {
	var ok bool
	err := s.write(ctx, func(tx db) error {
		var err error
		ok, err = insertFire(ctx, tx, f, outcome, message, time.Now())
		return err
	})
	if err != nil {
		return false, wrap("record schedule fire", err)
	}
	return ok, nil
}

// ScheduleFireExists reports whether f's fire time is recorded (acted on by some server).
func (s *Store) ScheduleFireExists(ctx context.Context, f Fire) (bool, error) {
	var n int
	err := s.reader().queryRow(ctx, `SELECT COUNT(*) FROM schedule_fires WHERE pipeline_id = ? AND schedule_key = ? AND fire_at = ?`,
		f.PipelineID, f.Key, s.reader().ts(f.At.UTC().Truncate(time.Second))).Scan(&n)
	if err != nil {
		return false, wrap("read schedule fire", err)
	}
	return n > 0, nil
}

// ScheduleFireList returns a pipeline's recorded fire times, the newest first (limit 1..200).
func (s *Store) ScheduleFireList(ctx context.Context, pipelineID int64, limit int) ([]ScheduleFire, error) {
	limit = min(max(limit, 1), 200)
	out, err := queryAll(ctx, s.reader(), scanFire, fireSelect+` WHERE f.pipeline_id = ? ORDER BY f.fire_at DESC, f.schedule_key LIMIT ?`, pipelineID, limit)
	if err != nil {
		return nil, wrap("list schedule fires", err)
	}
	return out, nil
}

// ScheduleFireOfRun returns the fire time that started run runID; ErrNotFound when no
// schedule started it.
func (s *Store) ScheduleFireOfRun(ctx context.Context, runID int64) (ScheduleFire, error) {
	out, err := queryAll(ctx, s.reader(), scanFire, fireSelect+` WHERE f.run_id = ?`, runID)
	switch {
	case err != nil:
		return ScheduleFire{}, wrap("read schedule fire of run", err)
	case len(out) == 0:
		return ScheduleFire{}, ErrNotFound
	}
	return out[0], nil
}

const fireSelect = `SELECT f.pipeline_id, f.schedule_key, f.title, f.fire_at, COALESCE(f.run_id, 0), COALESCE(r.number, 0),
	f.outcome, f.message, f.recorded_at FROM schedule_fires f LEFT JOIN runs r ON r.id = f.run_id`

func scanFire(row scanner, f *ScheduleFire) error {
	return row.Scan(&f.PipelineID, &f.Key, &f.Title, timeScan{&f.At}, &f.RunID, &f.RunNumber, &f.Outcome, &f.Message, timeScan{&f.RecordedAt})
}
