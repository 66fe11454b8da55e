package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// The events stream (GET /api/v1/events) keeps these times.
const (
	// eventsEvery is the least time between two writes of events to one stream: changes that
	// come faster are merged into the next write.
	eventsEvery = 500 * time.Millisecond
	// eventsHeartbeat is how often a quiet stream sends a comment, so proxies and the browser
	// keep it open and a dead client is noticed.
	eventsHeartbeat = 20 * time.Second
	// eventsWriteTimeout bounds one write: a client that stops reading loses its stream then,
	// and never holds the server's shutdown up for longer.
	eventsWriteTimeout = 10 * time.Second
	// eventsMaxAge ends a stream after this long; the browser reconnects at once, signed in
	// again, so a revoked session or membership stops its events within this time.
	eventsMaxAge = 5 * time.Minute
	// eventsRetry is the reconnect pause the stream asks of the browser (its retry: field).
	eventsRetry = 3 * time.Second
)

// events: GET /api/v1/events[?pipeline=NAME] → text/event-stream of small events saying what
// changed, for pages that then read it again through the API (so what a page shows is always
// the API's answer to its caller). Without pipeline: `runs` {"pipeline":NAME} for each
// pipeline the caller can see whose runs were created, started or ended, and, for global
// admins, `nodes` {} when servers or agents changed. With pipeline (viewer): `runs` of that
// pipeline, and `deliveries` of it for its developers and admins. Data {} means "anything may
// have changed" (after the server missed notifications). Changes of every server on the
// database are included. See docs/api.md.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var scope *store.Pipeline // nil: every pipeline the caller sees
	if name := r.URL.Query().Get("pipeline"); name != "" {
		p, _, ok := s.authorize(w, r, u, name, auth.Viewer, fmt.Sprintf("pipeline %q not found (or you are not one of its members)", name))
		if !ok {
			return
		}
		scope = &p
	}
	sub := s.live().subscribe()
	defer s.live().unsubscribe(sub)

	rc := http.NewResponseController(w)
	// The stream lasts; the server's read and write timeouts must not cut it (the read
	// deadline would end the request's context). Each write gets a deadline of its own.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // reverse proxies pass each event through at once
	w.WriteHeader(http.StatusOK)
	write := func(text string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
		if _, err := io.WriteString(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: " + strconv.FormatInt(eventsRetry.Milliseconds(), 10) + "\n: connected\n\n") {
		return
	}
	ctx := r.Context()
	heartbeat := time.NewTicker(eventsHeartbeat)
	defer heartbeat.Stop()
	maxAge := time.NewTimer(eventsMaxAge)
	defer maxAge.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Stopping: // nil when unset: never
			return
		case <-maxAge.C:
			return
		case <-heartbeat.C:
			if !write(": ping\n\n") {
				return
			}
		case <-sub.kick:
			if wait := eventsEvery - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-s.Stopping:
					t.Stop()
					return
				case <-t.C:
				}
			}
			text, gone, err := s.eventsText(ctx, u, scope, sub.take())
			if gone || ctx.Err() != nil {
				return // the pipeline was deleted or the caller lost access: the reconnect says so
			}
			if err != nil {
				s.logger().Warn("api: events: read what changed", "err", err)
				text = "event: runs\ndata: {}\n\n" // read again, whatever it was
			}
			last = time.Now()
			if text != "" && !write(text) {
				return
			}
		}
	}
}

// eventsText is what the stream of u (for scope, or every pipeline when nil) sends for c: its
// events, visible to u only. gone is true when scope no longer exists or u can no longer see it.
func (s *Server) eventsText(ctx context.Context, u store.User, scope *store.Pipeline, c liveChanges) (text string, gone bool, err error) {
	var b strings.Builder
	event := func(name, pipeline string) {
		data := "{}"
		if pipeline != "" {
			js, _ := json.Marshal(map[string]string{"pipeline": pipeline})
			data = string(js)
		}
		b.WriteString("event: " + name + "\ndata: " + data + "\n\n")
	}
	if scope != nil {
		_, runs := c.runs[scope.ID]
		_, deliveries := c.deliveries[scope.ID]
		runs, deliveries = runs || c.all, deliveries || c.all
		if !runs && !deliveries {
			return "", false, nil
		}
		roles, err := s.Store.PipelineRoles(ctx, []int64{scope.ID}, u.ID, u.Admin)
		if err != nil {
			return "", false, err
		}
		pr, ok := roles[scope.ID]
		if !ok {
			return "", true, nil
		}
		if runs {
			event("runs", pr.Name)
		}
		if role, err := auth.ParseRole(pr.Role); deliveries && err == nil && role.AtLeast(auth.Developer) {
			event("deliveries", pr.Name)
		}
		return b.String(), false, nil
	}
	switch {
	case c.all:
		event("runs", "")
	case len(c.runs) > 0:
		roles, err := s.Store.PipelineRoles(ctx, slices.Collect(maps.Keys(c.runs)), u.ID, u.Admin)
		if err != nil {
			return "", false, err
		}
		names := make([]string, 0, len(roles))
		for _, pr := range roles {
			names = append(names, pr.Name)
		}
		slices.Sort(names)
		for _, n := range names {
			event("runs", n)
		}
	}
	if u.Admin && (c.nodes || c.all) {
		event("nodes", "")
	}
	return b.String(), false, nil
}

// liveChanges is what changed since a stream last wrote.
type liveChanges struct {
	all        bool               // notifications may have been missed: anything may have changed
	runs       map[int64]struct{} // pipelines whose runs changed
	deliveries map[int64]struct{} // pipelines that recorded deliveries
	nodes      bool               // servers or agents changed
}

// liveSub is one stream's share of the changes.
type liveSub struct {
	mu   sync.Mutex
	c    liveChanges
	kick chan struct{} // buffered 1: something changed
}

// take returns the changes gathered and starts anew.
func (sub *liveSub) take() liveChanges {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	c := sub.c
	sub.c = liveChanges{}
	return c
}

// liveHub fans the store's notifications of runs, deliveries and nodes (of every server on the
// database) out to the event streams open here. One goroutine, started with the first stream,
// turns the run ids of TopicRuns into pipeline ids, one query per batch for all streams.
type liveHub struct {
	st     *store.Store
	mu     sync.Mutex
	subs   map[*liveSub]struct{}
	failed func(err error)
}

// live returns the server's liveHub, starting it the first time.
func (s *Server) live() *liveHub {
	s.liveOnce.Do(func() {
		s.liveHub = &liveHub{st: s.Store, subs: map[*liveSub]struct{}{},
			failed: func(err error) { s.logger().Warn("api: events: find the pipelines of changed runs", "err", err) }}
		// Subscribed before the first stream opens, so it misses nothing after its open.
		runs, endRuns := s.Store.Subscribe(store.TopicRuns)
		deliveries, endDeliveries := s.Store.Subscribe(store.TopicDeliveries)
		nodes, endNodes := s.Store.Subscribe(store.TopicNodes)
		go func() {
			defer endRuns()
			defer endDeliveries()
			defer endNodes()
			s.liveHub.run(s.Stopping, runs, deliveries, nodes)
		}()
	})
	return s.liveHub
}

func (h *liveHub) subscribe() *liveSub {
	sub := &liveSub{kick: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *liveHub) unsubscribe(sub *liveSub) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
}

// publish adds c to every stream's changes and wakes it.
func (h *liveHub) publish(c liveChanges) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.mu.Lock()
		sub.c.all = sub.c.all || c.all
		sub.c.nodes = sub.c.nodes || c.nodes
		sub.c.runs = addIDs(sub.c.runs, c.runs)
		sub.c.deliveries = addIDs(sub.c.deliveries, c.deliveries)
		sub.mu.Unlock()
		select {
		case sub.kick <- struct{}{}:
		default:
		}
	}
}

func addIDs(to, from map[int64]struct{}) map[int64]struct{} {
	if len(from) == 0 {
		return to
	}
	if to == nil {
		to = make(map[int64]struct{}, len(from))
	}
	maps.Copy(to, from)
	return to
}

// idle says whether no stream is open.
func (h *liveHub) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) == 0
}

// run delivers the store's notifications of the topics (TopicRuns, TopicDeliveries,
// TopicNodes) until stop is closed (never when nil).
func (h *liveHub) run(stop <-chan struct{}, runs, deliveries, nodes <-chan string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		var (
			c      liveChanges
			runIDs []int64
		)
		note := func(topic, payload string) {
			if payload == "" && topic != store.TopicNodes {
				c.all = true // "" after a reconnect: notifications may have been lost
				return
			}
			id, err := strconv.ParseInt(payload, 10, 64)
			switch {
			case topic == store.TopicNodes:
				c.nodes = true
			case err != nil:
			case topic == store.TopicRuns:
				runIDs = append(runIDs, id)
			default:
				c.deliveries = addIDs(c.deliveries, map[int64]struct{}{id: {}})
			}
		}
		select {
		case <-ctx.Done():
			return
		case p := <-runs:
			note(store.TopicRuns, p)
		case p := <-deliveries:
			note(store.TopicDeliveries, p)
		case p := <-nodes:
			note(store.TopicNodes, p)
		}
		// Take what else is waiting (only this goroutine reads them), so one query serves a burst.
		for range len(runs) {
			note(store.TopicRuns, <-runs)
		}
		for range len(deliveries) {
			note(store.TopicDeliveries, <-deliveries)
		}
		for range len(nodes) {
			note(store.TopicNodes, <-nodes)
		}
		if h.idle() {
			continue
		}
		if len(runIDs) > 0 && !c.all {
			refs, err := h.st.RunRefs(ctx, runIDs)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				h.failed(err)
				c.all = true
			}
			for _, ref := range refs {
				c.runs = addIDs(c.runs, map[int64]struct{}{ref.PipelineID: {}})
			}
		}
		h.publish(c)
	}
}
