package client

import (
	"context"
	"net/http"
)

// MemberList lists the members of a pipeline.
func (c *Client) MemberList(ctx context.Context, pipeline string) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("pipelines", pipeline, "members"), nil, &out); err != nil {
		return nil, err
	}
	return out.Members, nil
}

// MemberSet gives user the role ("viewer", "developer" or "admin") on a pipeline.
func (c *Client) MemberSet(ctx context.Context, pipeline, user, role string) (*Member, error) {
	in := map[string]string{"role": role}
	return call[Member](ctx, c, http.MethodPut, p("pipelines", pipeline, "members", user), in)
}

// MemberDelete removes user from a pipeline's members.
func (c *Client) MemberDelete(ctx context.Context, pipeline, user string) error {
	return c.doJSON(ctx, http.MethodDelete, p("pipelines", pipeline, "members", user), nil, nil)
}
