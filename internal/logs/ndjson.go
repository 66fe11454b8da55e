package logs

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/flowd/flowd/internal/run"
)

// TimeFormat is how log times are written: RFC 3339 in UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// NDJSON writes a log as newline-delimited JSON, one object a line: a chunk
// ({"seq","job_id","at","data"}), a keep-alive ({"ping":true}), or the end
// ({"end":true,"status":"success"} once the run has ended and every chunk was sent,
// {"end":false} when a read without follow found the run still going).
type NDJSON struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
}

// NewNDJSON returns an NDJSON writer to w.
func NewNDJSON(w io.Writer) *NDJSON {
	n := &NDJSON{w: w}
	n.enc = json.NewEncoder(&n.buf)
	n.enc.SetEscapeHTML(false)
	return n
}

type ndjsonChunk struct {
	Seq   int64  `json:"seq"`
	JobID int64  `json:"job_id"`
	At    string `json:"at"`
	Data  string `json:"data"`
}

type ndjsonEnd struct {
	End    bool       `json:"end"`
	Status run.Status `json:"status,omitempty"`
}

// Chunk writes one chunk's line. Its data is the chunk's bytes as a JSON string (bytes that are
// not UTF-8 become U+FFFD).
func (n *NDJSON) Chunk(c run.LogChunk) error {
	return n.line(ndjsonChunk{Seq: c.Seq, JobID: c.JobID, At: c.At.UTC().Format(TimeFormat), Data: string(c.Data)})
}

// Ping writes {"ping":true}.
func (n *NDJSON) Ping() error {
	return n.line(struct {
		Ping bool `json:"ping"`
	}{true})
}

// End writes the end line: {"end":true,"status":…} when status is terminal (every chunk was
// sent), else {"end":false}.
func (n *NDJSON) End(status run.Status) error {
	if !status.Terminal() {
		return n.line(ndjsonEnd{})
	}
	return n.line(ndjsonEnd{End: true, Status: status})
}

func (n *NDJSON) line(v any) error {
	n.buf.Reset()
	if err := n.enc.Encode(v); err != nil {
		return err
	}
	_, err := n.w.Write(n.buf.Bytes())
	return err
}
