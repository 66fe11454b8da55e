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
	cn := f.connFlags()
	if _, code := c.parse(f, args); code >= 0 {
		return code
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
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
	cn := f.connFlags()
	pos, code := c.parse(f, args)
	if code >= 0 {
		return code
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return c.usageError(f, "ID must be a token id (a number), got %q", pos[0])
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
	}
	if err := cl.TokenDelete(ctx, id); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "token %d revoked\n", id)
	return 0
}
