package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Delivery is one request received on a pipeline's webhook URL, with its outcome. DeliveryList
// fills neither Headers, Body, BodyTruncated, Response nor Trace.
type Delivery struct {
	ID            int64           `json:"id"`
	ReceivedAt    time.Time       `json:"received_at"`
	RemoteAddr    string          `json:"remote_addr"`
	StatusCode    int             `json:"status_code"`
	ErrorCode     string          `json:"error_code"` // "" when accepted
	RunID         *int64          `json:"run_id"`
	DryRun        bool            `json:"dry_run"`
	RedeliveryOf  *int64          `json:"redelivery_of"` // a redelivery of this delivery
	ReplayOf      *int64          `json:"replay_of"`     // an Idempotency-Key replay of it
	Headers       Headers         `json:"headers,omitempty"`
	Body          string          `json:"body,omitempty"` // up to the server's body limit
	BodyTruncated bool            `json:"body_truncated,omitempty"`
	Response      json.RawMessage `json:"response,omitempty"` // the JSON answer sent
	Trace         []TraceStep     `json:"trace,omitempty"`
}

// Headers are the request headers of a delivery, secrets redacted. It decodes both
// {"K":["v"]} and {"K":"v"}.
type Headers map[string][]string

// UnmarshalJSON accepts header values as lists of strings or as single strings.
func (h *Headers) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		*h = nil
		return nil
	}
	out := make(Headers, len(raw))
	for k, v := range raw {
		var list []string
		if err := json.Unmarshal(v, &list); err == nil {
			out[k] = list
			continue
		}
		var one string
		if err := json.Unmarshal(v, &one); err != nil {
			return err
		}
		out[k] = []string{one}
	}
	*h = out
	return nil
}

// DeliveryPage is one page of a pipeline's deliveries, newest first.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	NextBefore *int64     `json:"next_before"` // nil on the last page
}

// DeliveryList returns a page of a pipeline's webhook deliveries, newest first: at most limit
// (0: the server's default, 50), with ids below before (0: from the newest).
func (c *Client) DeliveryList(ctx context.Context, pipeline string, limit int, before int64) (*DeliveryPage, error) {
	var out DeliveryPage
	r := request{method: http.MethodGet, path: p("pipelines", pipeline, "deliveries"), query: pageQuery(limit, before)}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeliveryGet returns one delivery with its headers, body, answer and trace.
func (c *Client) DeliveryGet(ctx context.Context, id int64) (*Delivery, error) {
	return call[Delivery](ctx, c, http.MethodGet, p("deliveries", strconv.FormatInt(id, 10)), nil)
}

// DeliveryRedeliver sends a stored delivery's body through the pipeline's webhook as it is
// configured today (skipping the signature check) and returns the status and answer of the new
// delivery. A refusal of the webhook (e.g. 422, or 403 when the owner may no longer run the
// pipeline) is an answer with Error and Trace, not an error.
func (c *Client) DeliveryRedeliver(ctx context.Context, id int64) (int, *WebhookAnswer, error) {
	return c.webhookAnswer(ctx, request{method: http.MethodPost, path: p("deliveries", strconv.FormatInt(id, 10), "redeliver")})
}
