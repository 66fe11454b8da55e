package main

import (
	"context"
	"fmt"
)

func memberCommands() []command {
	return []command{
		{name: "set", summary: "give a user a role on a pipeline", run: (*cli).cmdMemberSet},
		{name: "ls", summary: "list the members of a pipeline", run: (*cli).cmdMemberList},
		{name: "rm", summary: "remove a user from a pipeline", run: (*cli).cmdMemberRemove},
	}
}

func (c *cli) cmdMemberSet(ctx context.Context, args []string) int {
	f := newFlags("member set", "flowd member set PIPELINE USER ROLE", `
Give USER the ROLE on PIPELINE (pipeline admins). ROLE is viewer (reads runs and logs),
developer (also starts and cancels runs) or admin (also edits the pipeline, members, triggers).`, 3, 3)
	cl, pos, code := c.connectWith(f, args, func(pos []string) error {
		switch pos[2] {
		case "viewer", "developer", "admin":
			return nil
		}
		return fmt.Errorf("ROLE must be viewer, developer or admin, got %q", pos[2])
	})
	if code >= 0 {
		return code
	}
	m, err := cl.MemberSet(ctx, pos[0], pos[1], pos[2])
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "%s is %s of %s\n", m.Username, m.Role, pos[0])
	return 0
}

func (c *cli) cmdMemberList(ctx context.Context, args []string) int {
	f := newFlags("member ls", "flowd member ls PIPELINE", "List the members of PIPELINE with their roles.", 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	ms, err := cl.MemberList(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.Username, m.Role})
	}
	table(c.stdout, []string{"USERNAME", "ROLE"}, rows)
	return 0
}

func (c *cli) cmdMemberRemove(ctx context.Context, args []string) int {
	f := newFlags("member rm", "flowd member rm PIPELINE USER", "Remove USER from the members of PIPELINE (pipeline admins).", 2, 2)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	return c.done(cl.MemberDelete(ctx, pos[0], pos[1]), "%s removed from %s", pos[1], pos[0])
}
