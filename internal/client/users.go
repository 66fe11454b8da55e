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

// PasswordChange changes the signed-in user's own password: a wrong current password is a 403
// *Error (code wrong_password), a new one outside the server's rules a 400. The server then
// ends the user's web sessions; API tokens, this client's included, stay valid.
func (c *Client) PasswordChange(ctx context.Context, current, newPW string) error {
	body := map[string]string{"current_password": current, "new_password": newPW}
	return c.doJSON(ctx, http.MethodPut, p("user", "password"), body, nil)
}
