package client

import (
	"context"
	"net/http"
)

// Me returns the signed-in user.
func (c *Client) Me(ctx context.Context) (*User, error) {
	return call[User](ctx, c, http.MethodGet, p("user"), nil)
}

// UserList lists every user (global admins only).
func (c *Client) UserList(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("users"), nil, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// UserCreate creates a user (global admins only); a taken name is a 409 *Error.
func (c *Client) UserCreate(ctx context.Context, u NewUser) (*User, error) {
	return call[User](ctx, c, http.MethodPost, p("users"), u)
}

// UserUpdate changes the set fields of a user (global admins only).
func (c *Client) UserUpdate(ctx context.Context, name string, ch UserChanges) (*User, error) {
	return call[User](ctx, c, http.MethodPatch, p("users", name), ch)
}

// UserDelete deletes a user (global admins only).
func (c *Client) UserDelete(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, p("users", name), nil, nil)
}
