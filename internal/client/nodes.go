package client

import (
	"context"
	"net/http"
)

// NodeList lists the servers and agents sharing the database (global admins only).
func (c *Client) NodeList(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("nodes"), nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}
