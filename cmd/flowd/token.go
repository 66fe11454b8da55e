package main

import (
	"context"
	"fmt"
	"strconv"
)

func tokenCommands() []command {
	return []command{
		{name: "ls", summary: "list your API tokens", run: (*cli).cmdTokenList},
		{name: "rm", summary: "revoke one of your API tokens", run: (*cli).cmdTokenRemove},
	}
}

func (c *cli) cmdTokenList(ctx context.Context, args []string) int {
	f := newFlags("token ls", "flowd token ls", "List your own API tokens ('flowd login' makes one each time).", 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	toks, err := cl.TokenList(ctx)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(toks))
	for _, t := range toks {
		rows = append(rows, []string{strconv.FormatInt(t.ID, 10), dash(t.Name), fmtTime(&t.CreatedAt), fmtTime(t.LastUsedAt)})
	}
	table(c.stdout, []string{"ID", "NAME", "CREATED", "LAST USED"}, rows)
	return 0
}

func (c *cli) cmdTokenRemove(ctx context.Context, args []string) int {
	f := newFlags("token rm", "flowd token rm ID", "Revoke your API token ID (see 'flowd token ls'); it stops working at once.", 1, 1)
	var id int64
	cl, _, code := c.connectWith(f, args, func(pos []string) error {
		var err error
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("ID must be a token id (a number), got %q", pos[0])
		}
		return nil
	})
	if code >= 0 {
		return code
	}
	return c.done(cl.TokenDelete(ctx, id), "token %d revoked", id)
}
