package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Revision is one saved definition of a pipeline; YAML (secret defaults masked as ***) is set
// only by RevisionGet.
type Revision struct {
	Revision  int64     `json:"revision"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Current   bool      `json:"current"`
	YAML      string    `json:"yaml"`
}

// RevisionPage is one page of a pipeline's revisions, newest first; NextBefore is the Before of
// the next page (nil: this was the last).
type RevisionPage struct {
	Revisions  []Revision `json:"revisions"`
	NextBefore *int64     `json:"next_before"`
}

// RevisionList lists the revisions of pipeline name, newest first: at most limit (0: the
// server's default), older than revision before (0: from the newest).
func (c *Client) RevisionList(ctx context.Context, name string, limit int, before int64) (*RevisionPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	path := p("pipelines", name, "revisions")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return call[RevisionPage](ctx, c, http.MethodGet, path, nil)
}

// RevisionGet returns revision rev of pipeline name with its YAML.
func (c *Client) RevisionGet(ctx context.Context, name string, rev int64) (*Revision, error) {
	return call[Revision](ctx, c, http.MethodGet, p("pipelines", name, "revisions", strconv.FormatInt(rev, 10)), nil)
}

// RevisionRestore saves the text of revision rev as the pipeline's new revision; a secret keeps
// its current value when the current revision has it, else gets rev's.
func (c *Client) RevisionRestore(ctx context.Context, name string, rev int64) (*Pipeline, error) {
	return call[Pipeline](ctx, c, http.MethodPost, p("pipelines", name, "revisions", strconv.FormatInt(rev, 10), "restore"), nil)
}
