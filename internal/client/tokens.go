package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
)

// Login exchanges a username and password (HTTP Basic) for a new API token named name (""
// lets the server choose). The returned token is shown only this once.
func (c *Client) Login(ctx context.Context, user, password, name string) (*NewToken, error) {
	r := request{method: http.MethodPost, path: p("tokens"), basicUser: user, basicPass: password}
	if name != "" {
		data, _ := json.Marshal(map[string]string{"name": name})
		r.body, r.contentType = bytes.NewReader(data), "application/json"
	}
	var out NewToken
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TokenList lists the caller's own API tokens.
func (c *Client) TokenList(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("tokens"), nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// TokenDelete revokes one of the caller's tokens.
func (c *Client) TokenDelete(ctx context.Context, id int64) error {
	return c.doJSON(ctx, http.MethodDelete, p("tokens", strconv.FormatInt(id, 10)), nil, nil)
}
