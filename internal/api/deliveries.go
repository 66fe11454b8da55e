package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// maxDeliveryPage is the largest page of the delivery log.
const maxDeliveryPage = 200

// deliverySummary is a delivery in the log.
type deliverySummary struct {
	ID           int64     `json:"id"`
	ReceivedAt   time.Time `json:"received_at"`
	RemoteAddr   string    `json:"remote_addr"`
	StatusCode   int       `json:"status_code"`
	ErrorCode    *string   `json:"error_code"` // null when the delivery was accepted
	RunID        *int64    `json:"run_id"`
	RunNumber    *int64    `json:"run_number"` // the run's number in its pipeline (#N); null without a run
	DryRun       bool      `json:"dry_run"`
	RedeliveryOf *int64    `json:"redelivery_of"`
	ReplayOf     *int64    `json:"replay_of"`
}

// deliveryDetail is one delivery with what was received and answered.
type deliveryDetail struct {
	deliverySummary
	Pipeline      string              `json:"pipeline"`
	Headers       map[string][]string `json:"headers"` // secret-bearing ones redacted
	Body          string              `json:"body"`
	BodyTruncated bool                `json:"body_truncated"`
	Response      json.RawMessage     `json:"response"` // the JSON answer, without its "delivery"
	Trace         json.RawMessage     `json:"trace"`
}

func toDeliverySummary(d store.Delivery) deliverySummary {
	out := deliverySummary{
		ID: d.ID, ReceivedAt: d.ReceivedAt, RemoteAddr: d.RemoteAddr, StatusCode: d.StatusCode,
		RunID: d.RunID, DryRun: d.DryRun, RedeliveryOf: d.RedeliveryOf, ReplayOf: d.ReplayOf,
	}
	if d.ErrorCode != "" {
		code := d.ErrorCode
		out.ErrorCode = &code
	}
	return out
}

// rawOr is raw when it is valid JSON, else fallback.
func rawOr(raw []byte, fallback string) json.RawMessage {
	if len(raw) == 0 || !json.Valid(raw) {
		return json.RawMessage(fallback)
	}
	return raw
}

// deliveryList: GET /api/v1/pipelines/{name}/deliveries?limit=&before= (developer) →
// {"deliveries":[…],"next_before":ID or null}, newest first.
func (s *Server) deliveryList(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Developer)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, 50, maxDeliveryPage)
	if !ok {
		return
	}
	before, ok := queryBefore(w, r, "a delivery id")
	if !ok {
		return
	}
	// One more than asked tells whether there is a next page; at the store's largest page, a
	// full page always offers a next one (which may be empty).
	ds, err := s.Store.DeliveryList(r.Context(), p.ID, min(limit+1, maxDeliveryPage), before)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	ds, next := nextPage(ds, limit, maxDeliveryPage, func(d store.Delivery) int64 { return d.ID })
	out := make([]deliverySummary, len(ds))
	for i, d := range ds {
		out[i] = toDeliverySummary(d)
	}
	if !s.runNumbers(w, r, out) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next_before": next})
}

// runNumbers fills the RunNumber of each of ds that started a run, in one query; false when
// it failed and was answered.
func (s *Server) runNumbers(w http.ResponseWriter, r *http.Request, ds []deliverySummary) bool {
	var ids []int64
	for _, d := range ds {
		if d.RunID != nil {
			ids = append(ids, *d.RunID)
		}
	}
	if len(ids) == 0 {
		return true
	}
	refs, err := s.Store.RunRefs(r.Context(), ids)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return false
	}
	for i, d := range ds {
		if d.RunID == nil {
			continue
		}
		if ref, ok := refs[*d.RunID]; ok {
			ds[i].RunNumber = &ref.Number
		}
	}
	return true
}

// deliveryAccess authenticates the caller, loads the delivery {id} and checks the caller is a
// developer of its pipeline; an unknown delivery and one the caller cannot see are one 404.
func (s *Server) deliveryAccess(w http.ResponseWriter, r *http.Request) (store.Delivery, store.User, bool) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return store.Delivery{}, store.User{}, false
	}
	msg := fmt.Sprintf("delivery %s not found (or you are not a member of its pipeline)", r.PathValue("id"))
	id, ok := pathID(w, r, msg)
	if !ok {
		return store.Delivery{}, store.User{}, false
	}
	d, err := s.Store.DeliveryGet(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, msg, "")
		return store.Delivery{}, store.User{}, false
	}
	if _, _, ok := s.authorize(w, r, u, d.Pipeline, auth.Developer, msg); !ok {
		return store.Delivery{}, store.User{}, false
	}
	return d, u, true
}

// deliveryGet: GET /api/v1/deliveries/{id} (developer) → the delivery with headers, body,
// answer and trace.
func (s *Server) deliveryGet(w http.ResponseWriter, r *http.Request) {
	d, _, ok := s.deliveryAccess(w, r)
	if !ok {
		return
	}
	headers := d.Headers
	if headers == nil {
		headers = map[string][]string{}
	}
	sum := []deliverySummary{toDeliverySummary(d)}
	if !s.runNumbers(w, r, sum) {
		return
	}
	writeJSON(w, http.StatusOK, deliveryDetail{
		deliverySummary: sum[0],
		Pipeline:        d.Pipeline,
		Headers:         headers,
		Body:            string(d.Body),
		BodyTruncated:   d.BodyTruncated,
		Response:        rawOr(d.Response, "null"),
		Trace:           rawOr(d.Trace, "[]"),
	})
}

// deliveryRedeliver: POST /api/v1/deliveries/{id}/redeliver (developer) → the stored body and
// headers through today's configuration as a new delivery (signature step skipped: the caller
// is signed in); the answer is the new delivery's, status included. Only a delivery that passed
// the signature check, or needed none, is sent again: another is refused 409 not_redeliverable.
func (s *Server) deliveryRedeliver(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	d, u, ok := s.deliveryAccess(w, r)
	if !ok {
		return
	}
	headers := http.Header{}
	for k, v := range d.Headers {
		headers[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	out := s.webhooks().Deliver(r.Context(), trigger.Incoming{
		PipelineID:    d.PipelineID,
		Headers:       headers,
		Body:          d.Body,
		BodyTruncated: d.BodyTruncated,
		RemoteAddr:    remoteHost(r),
		ContentType:   headers.Get("Content-Type"),
		RedeliveryOf:  d.ID,
		Signature:     trigger.SignatureVerdict(d),
		SkipSignature: true,
		Actor:         u.Username,
		ReceivedAt:    start,
	})
	s.writeOutcome(w, out, start)
}
