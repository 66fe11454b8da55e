package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"

	"github.com/flowd/flowd/internal/client"
)

func (c *cli) cmdLogin(ctx context.Context, args []string) int {
	f := newFlags("login", "flowd login [--server URL] [--user NAME] [--password-stdin]", `
Sign in to a flowd server with a username and password, and save a new API token for the
other commands in the config file ($XDG_CONFIG_HOME/flowd/config.json, or ~/.config/flowd/
config.json; FLOWD_CONFIG names another file). The file is readable by you only (0600).

The server comes from --server, else FLOWD_SERVER, else the one of the saved login, else
`+defaultServer+`. It is saved with the token, and every later command talks to it unless
given --server or FLOWD_SERVER: after 'flowd login --server http://127.0.0.1:8081' the other
commands need no flag.

The password comes from stdin with --password-stdin (echo "$PW" | flowd login --user alice
--password-stdin), else from FLOWD_PASSWORD, else from a prompt (not echoed at a terminal).
The username comes from --user, else FLOWD_USER, else a prompt.`, 0, 0)
	server := f.String("server", "", "flowd server `URL` (default: FLOWD_SERVER, the saved login's, or "+defaultServer+")")
	user := f.String("user", "", "`username` (default: FLOWD_USER, or a prompt)")
	fromStdin := f.Bool("password-stdin", false, "read the password from stdin")
	name := f.String("name", "", "`name` of the new token (default: flowd-cli@HOSTNAME)")
	if _, code := c.parse(f, args); code >= 0 {
		return code
	}
	srv := firstOf(*server, c.getenv("FLOWD_SERVER"))
	if srv == "" {
		if saved, err := c.loadConfig(); err == nil {
			srv = saved.Server
		}
	}
	srv = normalizeServer(firstOf(srv, defaultServer))
	username := firstOf(*user, c.getenv("FLOWD_USER"))
	if username == "" {
		if *fromStdin {
			return c.usageError(f, "--password-stdin needs --user (or FLOWD_USER)")
		}
		var err error
		if username, err = c.readLine("Username: "); err != nil {
			return c.fail(fmt.Errorf("read username: %w", err))
		}
	}
	pw, err := c.password(*fromStdin, "FLOWD_PASSWORD", "Password for "+username+": ")
	if err != nil {
		return c.fail(fmt.Errorf("read password: %w", err))
	}
	tokenName := *name
	if tokenName == "" {
		host, _ := os.Hostname()
		tokenName = "flowd-cli@" + firstOf(host, "unknown")
	}
	tok, err := client.New(srv, "", c.hc).Login(ctx, username, pw, tokenName)
	if ae := (*client.Error)(nil); errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		// Not a token problem (fail's hint): the user or the password is wrong.
		fmt.Fprintf(c.stderr, "flowd: %s (signing in to %s as %s)\n", ae.Message, srv, username)
		if username == "admin" && ae.Code == "unauthorized" {
			fmt.Fprintln(c.stderr, "(admin's password is the one of the server's first start: FLOWD_ADMIN_PASSWORD then, or the random one it printed; 'flowd serve --reset-admin-password' sets a new one)")
		}
		return 1
	}
	if err != nil {
		return c.fail(err)
	}
	path, err := c.saveConfig(savedLogin{Server: srv, Token: tok.Token, Username: firstOf(tok.Username, username)})
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "logged in to %s as %s (token saved in %s)\n", srv, firstOf(tok.Username, username), path)
	return 0
}

func (c *cli) cmdLogout(ctx context.Context, args []string) int {
	f := newFlags("logout", "flowd logout", `
Delete the saved login (the config file written by 'flowd login'). The token itself stays valid
on the server until you revoke it with 'flowd token rm ID' (see 'flowd token ls').`, 0, 0)
	if _, code := c.parse(f, args); code >= 0 {
		return code
	}
	path, err := c.configPath()
	if err != nil {
		return c.fail(err)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintln(c.stdout, "not logged in")
			return 0
		}
		return c.fail(fmt.Errorf("logout: %w", err))
	}
	fmt.Fprintf(c.stdout, "logged out (removed %s)\n", path)
	return 0
}

func (c *cli) cmdWhoami(ctx context.Context, args []string) int {
	f := newFlags("whoami", "flowd whoami", "Show the user the token belongs to, and the server.", 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	u, err := cl.Me(ctx)
	if err != nil {
		return c.fail(err)
	}
	role := "user"
	if u.Admin {
		role = "admin"
	}
	fmt.Fprintf(c.stdout, "%s (%s) on %s\n", u.Username, role, cl.BaseURL())
	return 0
}
