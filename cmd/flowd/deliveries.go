package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/client"
)

func (c *cli) cmdDeliveries(ctx context.Context, args []string) int {
	f := newFlags("deliveries", "flowd deliveries PIPELINE [--limit N] [--before ID]", `
List the requests received on the webhook of PIPELINE, newest first (pipeline developers):
their answer status and error, the run they started, and whether they were a dry run, a
redelivery or an Idempotency-Key replay. 'flowd delivery ID' shows one in full. When there are
more, the last line tells the --before value that shows the next page.`, 1, 1)
	pg := f.pagingFlags("deliveries", "only deliveries with an id below `ID`")
	cl, pos, code := c.connectWith(f, args, pg.check)
	if code >= 0 {
		return code
	}
	page, err := cl.DeliveryList(ctx, pos[0], pg.limit, pg.before)
	if err != nil {
		return c.fail(err)
	}
	if len(page.Deliveries) == 0 {
		fmt.Fprintf(c.stderr, "no deliveries to the webhook of %s\n", pos[0])
		return 0
	}
	rows := make([][]string, 0, len(page.Deliveries))
	for _, d := range page.Deliveries {
		rows = append(rows, []string{strconv.FormatInt(d.ID, 10), fmtTime(&d.ReceivedAt), strconv.Itoa(d.StatusCode),
			dash(d.ErrorCode), idOrDash(d.RunID), dash(strings.Join(deliveryFlags(&d), ", "))})
	}
	table(c.stdout, []string{"ID", "RECEIVED", "STATUS", "ERROR", "RUN", "FLAGS"}, rows)
	if page.NextBefore != nil {
		fmt.Fprintf(c.stderr, "more: flowd deliveries %s --before %d\n", pos[0], *page.NextBefore)
	}
	return 0
}

func idOrDash(id *int64) string {
	if id == nil {
		return "-"
	}
	return strconv.FormatInt(*id, 10)
}

// deliveryFlags are "dry-run", "redelivery of N" and "replay of N" as they apply to d.
func deliveryFlags(d *client.Delivery) []string {
	var fl []string
	if d.DryRun {
		fl = append(fl, "dry-run")
	}
	if d.RedeliveryOf != nil {
		fl = append(fl, fmt.Sprintf("redelivery of %d", *d.RedeliveryOf))
	}
	if d.ReplayOf != nil {
		fl = append(fl, fmt.Sprintf("replay of %d", *d.ReplayOf))
	}
	return fl
}

func (c *cli) cmdDelivery(ctx context.Context, args []string) int {
	f := newFlags("delivery", "flowd delivery ID [--redeliver]", `
Show webhook delivery ID (as 'flowd deliveries' lists it; pipeline developers): when and from
where it came, its headers (secrets redacted) and body, the answer it got, and the decision
step by step. With --redeliver, send its body through the webhook again as it is configured
today instead (see 'flowd redeliver').`, 1, 1)
	redeliver := f.Bool("redeliver", false, "send the delivery again (as 'flowd redeliver ID')")
	cl, id, code := c.connectID(f, args, "ID", "delivery")
	if code >= 0 {
		return code
	}
	if *redeliver {
		return c.redeliver(ctx, cl, id)
	}
	d, err := cl.DeliveryGet(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	fmt.Fprintf(w, "Delivery:  %d\n", d.ID)
	fmt.Fprintf(w, "Received:  %s from %s\n", fmtTime(&d.ReceivedAt), dash(d.RemoteAddr))
	status := fmt.Sprintf("%d %s", d.StatusCode, http.StatusText(d.StatusCode))
	if d.ErrorCode != "" {
		status += " (" + d.ErrorCode + ")"
	}
	fmt.Fprintf(w, "Status:    %s\n", status)
	fmt.Fprintf(w, "Run:       %s\n", idOrDash(d.RunID))
	if fl := deliveryFlags(d); len(fl) > 0 {
		fmt.Fprintf(w, "Flags:     %s\n", strings.Join(fl, ", "))
	}
	fmt.Fprintln(w, "\nHeaders:")
	if len(d.Headers) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, k := range slices.Sorted(maps.Keys(d.Headers)) {
		for _, v := range d.Headers[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "\nBody:")
	switch {
	case d.Body == "":
		fmt.Fprintln(w, "  (empty)")
	default:
		indent(w, d.Body)
	}
	if d.BodyTruncated {
		fmt.Fprintln(w, "  (truncated: the body was longer than the server keeps)")
	}
	fmt.Fprintln(w, "\nAnswer:")
	indent(w, prettyJSON(d.Response))
	if len(d.Trace) > 0 {
		fmt.Fprintln(w)
		printTrace(w, d.Trace)
	}
	return 0
}

func (c *cli) cmdRedeliver(ctx context.Context, args []string) int {
	f := newFlags("redeliver", "flowd redeliver ID", `
Send the body of webhook delivery ID through its pipeline's webhook again, as the webhook is
configured today (pipeline developers); the signature is not checked again, but only a delivery
that passed the signature check (or whose trigger had no secret) can be redelivered: another
is refused with 409 not_redeliverable. A redelivery that would start a run meets the queue
bounds as a delivery does: over the pipeline's (queue: in its YAML) it is refused 429
pipeline_queue_full, over the server's 503 server_queue_full, with nothing stored and a
Retry-After that is printed. Prints the answer of the new delivery: its status, the run it
started, and the decision step by step. Exit status: 0 if the webhook accepted it (2xx), 1 if
it refused.`, 1, 1)
	cl, id, code := c.connectID(f, args, "ID", "delivery")
	if code >= 0 {
		return code
	}
	return c.redeliver(ctx, cl, id)
}

// redeliver redelivers delivery id and prints the answer; 0 if the webhook accepted it.
func (c *cli) redeliver(ctx context.Context, cl *client.Client, id int64) int {
	status, ans, err := cl.DeliveryRedeliver(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	accepted := status >= 200 && status < 300
	switch {
	case ans.Delivery > 0:
		fmt.Fprintf(w, "delivery %d redelivered as delivery %d\n", id, ans.Delivery)
	case !accepted:
		// Refusals before the delivery is stored: over a queue bound or the rate.
		fmt.Fprintf(w, "delivery %d redelivered: refused, nothing was stored\n", id)
	default:
		fmt.Fprintf(w, "delivery %d redelivered\n", id)
	}
	fmt.Fprintf(w, "status:   %d %s\n", status, http.StatusText(status))
	if ans.Error != nil {
		fmt.Fprintf(w, "error:    %s\n", answerError(status, ans))
	}
	if ans.RetryAfter > 0 {
		fmt.Fprintf(w, "retry:    %s\n", retryAfter(ans.RetryAfter))
	}
	switch {
	case ans.Run != nil:
		fmt.Fprintf(w, "run:      #%d (id %d) %s: %s\n", ans.Run.Number, ans.Run.ID, dash(ans.Run.Status), dash(ans.Run.URL))
	case ans.Skipped != nil:
		fmt.Fprintf(w, "run:      none, skipped: %s\n", *ans.Skipped)
	default:
		fmt.Fprintln(w, "run:      none")
	}
	if ans.Replayed {
		fmt.Fprintln(w, "replayed: yes (the first answer to the same Idempotency-Key; nothing new started)")
	}
	if len(ans.Ignored) > 0 {
		fmt.Fprintf(w, "ignored:  %s\n", strings.Join(ans.Ignored, ", "))
	}
	printTrace(w, ans.Trace)
	if accepted {
		return 0
	}
	return 1
}

// retryAfter is "send again after 12 s (Retry-After: 12)" for an answer's Retry-After.
func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return fmt.Sprintf("send again after %d s (Retry-After: %d)", secs, secs)
}

// indent prints text with every line indented by two spaces.
func indent(w io.Writer, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// prettyJSON indents a JSON answer; a JSON string is shown as its text, nothing as "(none)".
func prettyJSON(raw json.RawMessage) string {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return "(none)"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
