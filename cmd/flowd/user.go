package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/client"
)

func userCommands() []command {
	return []command{
		{name: "add", summary: "create a user", run: (*cli).cmdUserAdd},
		{name: "ls", summary: "list users", run: (*cli).cmdUserList},
		{name: "disable", summary: "stop a user from signing in (keeps their data)", run: (*cli).cmdUserDisable},
		{name: "enable", summary: "let a disabled user sign in again", run: (*cli).cmdUserEnable},
		{name: "passwd", summary: "set (reset) a user's password; --generate makes one", run: (*cli).cmdUserPasswd},
		{name: "rm", summary: "delete a user", run: (*cli).cmdUserRemove},
	}
}

const newPasswordHelp = `The password (8 characters or more) comes from stdin with --password-stdin, else from
FLOWD_NEW_PASSWORD, else from a prompt (not echoed at a terminal).`

func (c *cli) cmdUserAdd(ctx context.Context, args []string) int {
	f := newFlags("user add", "flowd user add NAME [--admin] [--password-stdin]", `
Create the user NAME (global admins only). NAME is lowercase letters, digits, '.', '_' and '-'.
`+newPasswordHelp, 1, 1)
	admin := f.Bool("admin", false, "make the user a global admin")
	fromStdin := f.Bool("password-stdin", false, "read the password from stdin")
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	pw, err := c.password(*fromStdin, "FLOWD_NEW_PASSWORD", "Password for "+pos[0]+": ")
	if err != nil {
		return c.fail(fmt.Errorf("read password: %w", err))
	}
	u, err := cl.UserCreate(ctx, client.NewUser{Username: pos[0], Password: pw, Admin: *admin})
	if err != nil {
		return c.fail(err)
	}
	kind := "user"
	if u.Admin {
		kind = "admin"
	}
	fmt.Fprintf(c.stdout, "%s %s created\n", kind, u.Username)
	return 0
}

func (c *cli) cmdUserList(ctx context.Context, args []string) int {
	f := newFlags("user ls", "flowd user ls", "List every user (global admins only).", 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	users, err := cl.UserList(ctx)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(users))
	for _, u := range users {
		rows = append(rows, []string{u.Username, yesNo(u.Admin), yesNo(u.Disabled), fmtTime(&u.CreatedAt)})
	}
	table(c.stdout, []string{"USERNAME", "ADMIN", "DISABLED", "CREATED"}, rows)
	return 0
}

func (c *cli) cmdUserDisable(ctx context.Context, args []string) int {
	return c.userToggle(ctx, args, true)
}

func (c *cli) cmdUserEnable(ctx context.Context, args []string) int {
	return c.userToggle(ctx, args, false)
}

func (c *cli) userToggle(ctx context.Context, args []string, disable bool) int {
	verb, help := "enable", "Let the disabled user NAME sign in again (global admins only)."
	if disable {
		verb, help = "disable", `
Stop the user NAME from signing in or using their tokens (global admins only). Their pipelines,
runs and memberships stay; webhook triggers they own stop starting runs until re-enabled.`
	}
	f := newFlags("user "+verb, "flowd user "+verb+" NAME", help, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	_, err := cl.UserUpdate(ctx, pos[0], client.UserChanges{Disabled: &disable})
	return c.done(err, "user %s %sd", pos[0], verb)
}

func (c *cli) cmdUserPasswd(ctx context.Context, args []string) int {
	f := newFlags("user passwd", "flowd user passwd NAME [--password-stdin | --generate]", `
Set the password of the user NAME (global admins only): reset a password someone forgot.
The password (8 characters or more) comes from stdin with --password-stdin, else from
FLOWD_NEW_PASSWORD, else from a prompt, asked twice (not echoed at a terminal). --generate
makes a random one and prints it once. NAME's web sessions end at once, as when they change
it themselves; their API tokens keep working (they revoke them with 'flowd token revoke').
For your own password use 'flowd passwd', which asks for the current one.`, 1, 1)
	fromStdin := f.Bool("password-stdin", false, "read the password from stdin")
	generate := f.Bool("generate", false, "make a random password and print it once")
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	pw, err := c.newUserPassword(pos[0], *fromStdin, *generate)
	if err != nil {
		return c.fail(err)
	}
	if _, err := cl.UserUpdate(ctx, pos[0], client.UserChanges{Password: &pw}); err != nil {
		return c.fail(err)
	}
	if *generate {
		fmt.Fprintf(c.stdout, "new password of %s (shown once): %s\n", pos[0], pw)
	}
	fmt.Fprintf(c.stdout, "password of %s changed; their web sessions are signed out\n", pos[0])
	return 0
}

// newUserPassword is the password cmdUserPasswd sets: generated, from stdin or the
// environment, or typed twice at a prompt.
func (c *cli) newUserPassword(name string, fromStdin, generate bool) (string, error) {
	switch {
	case generate && fromStdin:
		return "", errors.New("--generate and --password-stdin exclude each other; use one")
	case generate:
		return auth.RandomPassword()
	case fromStdin || c.getenv("FLOWD_NEW_PASSWORD") != "":
		pw, err := c.password(fromStdin, "FLOWD_NEW_PASSWORD", "")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return pw, nil
	}
	pw, err := c.password(false, "", "New password for "+name+": ")
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	again, err := c.readSecret("The same again: ")
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if again != pw {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

func (c *cli) cmdUserRemove(ctx context.Context, args []string) int {
	f := newFlags("user rm", "flowd user rm NAME", `
Delete the user NAME (global admins only; not yourself). Their web sessions and API tokens stop
working and they leave every pipeline's members; pipelines, runs and logs stay. Webhook triggers
NAME enabled stop starting runs: deliveries are answered 403 insufficient_permissions naming
NAME until a pipeline admin runs 'flowd webhook disable' and 'flowd webhook enable'.
'flowd user disable' keeps their records instead.`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	return c.done(cl.UserDelete(ctx, pos[0]), "user %s deleted", pos[0])
}
