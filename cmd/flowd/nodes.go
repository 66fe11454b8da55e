package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	flowrun "github.com/flowd/flowd/internal/run"
)

func (c *cli) cmdNodes(ctx context.Context, args []string) int {
	f := newFlags("nodes", "flowd nodes", `
List the servers and build agents sharing the server's database (global admins only): each
one's version, when it started, how long ago its last heartbeat was (by the database's clock),
how many jobs it runs and which, and whether it is live (a heartbeat within its lease TTL); an
agent's labels, capacity and whether it is paused too; a server's labels (--labels) and its
--executors as its capacity. A node that stopped stays listed.`, 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	nodes, err := cl.NodeList(ctx)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		age := time.Duration(n.HeartbeatAge * float64(time.Second))
		labels, capacity, paused := "-", "-", "-"
		if a := n.Agent; a != nil {
			labels, capacity, paused = dash(flowrun.FormatLabels(a.Labels)), fmt.Sprint(a.Capacity), yesNo(a.Paused)
		}
		if sv := n.Server; sv != nil {
			labels, capacity = dash(flowrun.FormatLabels(sv.Labels)), fmt.Sprint(sv.Executors)
		}
		running := make([]string, 0, len(n.Running))
		for _, j := range n.Running {
			running = append(running, fmt.Sprintf("%s#%d %s/%s", j.Pipeline, j.RunNumber, j.Stage, j.Job))
		}
		rows = append(rows, []string{
			n.Name, n.Kind, dash(n.Version), fmtTime(&n.StartedAt), fmtAgo(age), fmt.Sprint(n.JobsHeld), yesNo(n.Live),
			labels, capacity, paused, dash(strings.Join(running, ", ")),
		})
	}
	table(c.stdout, []string{"NAME", "KIND", "VERSION", "STARTED", "HEARTBEAT", "JOBS", "LIVE", "LABELS", "CAPACITY", "PAUSED", "RUNNING"}, rows)
	return 0
}

// fmtAgo shows an age to the second: "12s ago", "just now" under a second.
func fmtAgo(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return d.Round(time.Second).String() + " ago"
}
