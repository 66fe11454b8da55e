package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
)

// maxLogPut is the most log bytes one log call carries (the protocol's limit).
const maxLogPut = 1 << 20

// finishRetryFor is how long a finish is retried while the server is away.
const finishRetryFor = 30 * time.Minute

// attemptConn is the per-attempt calls of one claimed job.
type attemptConn struct {
	c     *conn
	id    int64
	token string
}

// path is the path of the per-attempt call p (agentproto.HeartbeatPath, …) of the attempt.
func (a attemptConn) path(p string) string { return agentproto.AttemptPath(p, a.id) }

// upload sends the buffer's bytes by offset as they come (each call at most maxLogPut bytes,
// from the length the server acknowledged), until the buffer is closed and the server has all
// of it. A lost answer is a resend of bytes the server may have: it ignores what it has. A
// 416 says the length it has, and sending resumes there. It returns a *goneError when the
// attempt is no longer live, errUnauthorized, or ctx's cause.
func upload(ctx context.Context, a attemptConn, buf *logBuffer) error {
	for {
		off, data, done, err := buf.next(ctx, maxLogPut)
		if err != nil || done {
			return err
		}
		var ans agentproto.LogResponse
		err = a.c.do(ctx, call{
			method: http.MethodPut, path: a.path(agentproto.LogPath) + "?offset=" + strconv.FormatInt(off, 10),
			attempt: a.token, body: data,
		}, &ans)
		var gap *gapError
		switch {
		case err == nil:
			if ans.Length < off {
				return fmt.Errorf("agent: the server answered a log call at offset %d with length %d", off, ans.Length)
			}
			buf.setAcked(ans.Length)
		case errors.As(err, &gap):
			buf.setAcked(gap.Length)
		default:
			return err
		}
	}
}

// finish records the job's end once the server has the whole log: it checks the stored log
// by length and SHA-256, sending again what the server lacks (log_incomplete: from the length
// it has; log_mismatch: all of it), and is retried for finishRetryFor while the server is
// away (the caller bounds the whole with ctx). A *goneError of a state (lost, canceled, finished) means the end is not recorded: the
// attempt is no longer this agent's.
func finish(ctx context.Context, a attemptConn, buf *logBuffer, req agentproto.FinishRequest, log *slog.Logger) error {
	until := time.Now().Add(finishRetryFor)
	for {
		if err := upload(ctx, a, buf); err != nil {
			return err
		}
		length, sha, err := buf.sum()
		if err != nil {
			return err
		}
		req.LogLength, req.LogSHA256 = length, sha
		err = a.c.postJSON(ctx, a.path(agentproto.FinishPath), a.token, req, nil, until)
		var gone *goneError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &gone) && gone.Code == "log_incomplete":
			log.Warn("the server lacks part of the job's log; sending it again", "server_has", gone.Length, "length", length)
			buf.setAcked(gone.Length)
		case errors.As(err, &gone) && gone.Code == "log_mismatch":
			log.Warn("the job's log stored on the server is not the agent's (SHA-256 differs); sending all of it again", "length", length)
			buf.setAcked(gone.Length) // 0: the server dropped what it had
		default:
			return err
		}
		if time.Now().After(until) {
			return fmt.Errorf("agent: the job's end was not recorded within %v: %w", finishRetryFor, err)
		}
	}
}
