package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// yamlType is the Content-Type of pipeline definitions.
const yamlType = "application/yaml"

// PipelineList lists the pipelines the caller is a member of (all of them for admins).
func (c *Client) PipelineList(ctx context.Context) ([]Pipeline, error) {
	var out struct {
		Pipelines []Pipeline `json:"pipelines"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("pipelines"), nil, &out); err != nil {
		return nil, err
	}
	return out.Pipelines, nil
}

// PipelineGet returns a pipeline with its YAML (secret defaults masked), variables and stages.
func (c *Client) PipelineGet(ctx context.Context, name string) (*Pipeline, error) {
	return call[Pipeline](ctx, c, http.MethodGet, p("pipelines", name), nil)
}

// PipelineCreate creates a pipeline from its YAML definition. A taken name is a 409 *Error; an
// invalid definition a 422 *Error with Code "invalid_pipeline" and every problem.
func (c *Client) PipelineCreate(ctx context.Context, yaml []byte) (*Pipeline, error) {
	return c.sendYAML(ctx, http.MethodPost, p("pipelines"), yaml)
}

// PipelineUpdate replaces the definition of pipeline name (a new revision). The YAML's name must
// be name. A secret default written as *** keeps the stored value.
func (c *Client) PipelineUpdate(ctx context.Context, name string, yaml []byte) (*Pipeline, error) {
	return c.sendYAML(ctx, http.MethodPut, p("pipelines", name), yaml)
}

// PipelineApply creates the pipeline, or replaces it if its name is taken. created reports
// which one happened.
func (c *Client) PipelineApply(ctx context.Context, yaml []byte) (pl *Pipeline, created bool, err error) {
	pl, err = c.PipelineCreate(ctx, yaml)
	if err == nil {
		return pl, true, nil
	}
	if !IsStatus(err, http.StatusConflict) {
		return nil, false, err
	}
	name := PipelineName(yaml)
	if name == "" {
		return nil, false, fmt.Errorf("%w (and no top-level name: line found to update it)", err)
	}
	pl, err = c.PipelineUpdate(ctx, name, yaml)
	if err != nil {
		return nil, false, err
	}
	return pl, false, nil
}

// PipelineDelete deletes a pipeline with its runs.
func (c *Client) PipelineDelete(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, p("pipelines", name), nil, nil)
}

// PipelineTrust marks a pipeline trusted (global admins only), or with trusted false no longer
// trusted. A server whose steps run as its own OS user runs only trusted pipelines.
func (c *Client) PipelineTrust(ctx context.Context, name string, trusted bool) (*Pipeline, error) {
	verb := "untrust"
	if trusted {
		verb = "trust"
	}
	return call[Pipeline](ctx, c, http.MethodPost, p("pipelines", name, verb), nil)
}

func (c *Client) sendYAML(ctx context.Context, method, path string, yaml []byte) (*Pipeline, error) {
	var out Pipeline
	r := request{method: method, path: path, body: bytes.NewReader(yaml), contentType: yamlType}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

var nameLine = regexp.MustCompile(`(?m)^name:[ \t]*(.*?)[ \t]*\r?$`)

// PipelineName returns the value of the top-level "name:" line of a pipeline definition, without
// quotes or a trailing comment, or "" if there is none. It is no YAML parser: it reads the one
// line a definition's name is written on, which is enough to address the pipeline.
func PipelineName(yaml []byte) string {
	m := nameLine.FindSubmatch(yaml)
	if m == nil {
		return ""
	}
	v := string(m[1])
	if v != "" && (v[0] == '"' || v[0] == '\'') {
		if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
			return v[1 : 1+end]
		}
		return ""
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	} else if strings.HasPrefix(v, "#") {
		v = ""
	}
	return strings.TrimSpace(v)
}

// Schedules is a pipeline's schedules with their next fire times, and the newest fire times
// acted on.
type Schedules struct {
	Schedules []Schedule `json:"schedules"`
	Fires     []Fire     `json:"fires"`
}

// ScheduleList reads a pipeline's schedules and its newest fire times (limit 1..200).
func (c *Client) ScheduleList(ctx context.Context, name string, limit int) (*Schedules, error) {
	return call[Schedules](ctx, c, http.MethodGet, p("pipelines", name, "schedules")+"?limit="+strconv.Itoa(limit), nil)
}
