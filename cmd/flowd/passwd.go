package main

import (
	"context"
	"errors"
	"fmt"
)

func (c *cli) cmdPasswd(ctx context.Context, args []string) int {
	f := newFlags("passwd", "flowd passwd [--password-stdin]", `
Change your own password. The current password comes from FLOWD_PASSWORD, else from a prompt;
the new one (8 characters or more) from FLOWD_NEW_PASSWORD, else from a prompt, asked twice.
With --password-stdin, stdin holds two lines: the current password, then the new one.
The change signs you out of the web UI everywhere; API tokens, the one 'flowd login' saved
included, keep working ('flowd token ls' and 'flowd token revoke' manage them).
`, 0, 0)
	fromStdin := f.Bool("password-stdin", false, "read the current and the new password from stdin, one a line")
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	cur, pw, err := c.passwords(*fromStdin)
	if err != nil {
		return c.fail(fmt.Errorf("read password: %w", err))
	}
	me, err := cl.Me(ctx)
	if err != nil {
		return c.fail(err)
	}
	return c.done(cl.PasswordChange(ctx, cur, pw), "password of %s changed; sign in to the web UI again with it", me.Username)
}

// passwords reads the current and the new password for cmdPasswd.
func (c *cli) passwords(fromStdin bool) (current, newPW string, err error) {
	if fromStdin {
		current, err1 := c.readLine("")
		newPW, err2 := c.readLine("")
		if err1 != nil || err2 != nil || current == "" || newPW == "" {
			return "", "", errors.New("with --password-stdin, stdin must hold two lines: the current password, then the new one")
		}
		return current, newPW, nil
	}
	if current, err = c.password(false, "FLOWD_PASSWORD", "Current password: "); err != nil {
		return "", "", err
	}
	if newPW = c.getenv("FLOWD_NEW_PASSWORD"); newPW != "" {
		return current, newPW, nil
	}
	if newPW, err = c.readSecret("New password: "); err != nil {
		return "", "", err
	}
	again, err := c.readSecret("New password again: ")
	if err != nil {
		return "", "", err
	}
	if newPW != again {
		return "", "", errors.New("the two new passwords differ; nothing was changed")
	}
	if newPW == "" {
		return "", "", errors.New("empty password")
	}
	return current, newPW, nil
}
