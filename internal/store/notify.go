package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Notification topics: what changed, for servers that share the database. A payload of "" says
// "anything may have changed": Listen sends it to every subscriber after it (re)connects,
// since notifications sent while nobody listened are lost.
const (
	// TopicWork: new queued work; every server's scheduler looks for it. No payload.
	TopicWork = "work"
	// TopicLog: a run's log or status changed; its followers read on. Payload: the run id.
	TopicLog = "log"
	// TopicCancel: a run's cancel was requested; the server running its jobs stops them.
	// Payload: the run id.
	TopicCancel = "cancel"
	// TopicRuns: a run was created, started or ended; pages that list runs read again.
	// Payload: the run id. Sent through Changed (batched, see SetAnnouncer).
	TopicRuns = "runs"
	// TopicDeliveries: a webhook delivery was recorded. Payload: the pipeline id.
	TopicDeliveries = "deliveries"
	// TopicNodes: a server or an agent registered, an agent was paused, resumed, given or
	// revoked a token. No payload.
	TopicNodes = "nodes"
)

// topics are every topic Listen listens to.
var topics = []string{TopicWork, TopicLog, TopicCancel, TopicRuns, TopicDeliveries, TopicNodes}

// SetAnnouncer makes Changed hand its notifications to announce (which must not block), e.g.
// a sender that batches them and Notifies the other servers, whose Listen (this one's too)
// gives them to the subscribers. Without one, Changed gives them to this store's subscribers
// at once: all there is on SQLite. Call it before the store is used.
func (s *Store) SetAnnouncer(announce func(topic, payload string)) { s.announce = announce }

// Changed tells the subscribers of topic (on every server, once an announcer is set) that
// something changed, without waiting: the store calls it after a write that pages showing
// runs, deliveries or nodes care about has committed.
func (s *Store) Changed(topic, payload string) {
	if s.announce != nil {
		s.announce(topic, payload)
		return
	}
	s.hub.publish(topic, payload)
}

// runsChanged is Changed(TopicRuns) for each run id.
func (s *Store) runsChanged(ids ...int64) {
	for _, id := range ids {
		s.Changed(TopicRuns, strconv.FormatInt(id, 10))
	}
}

// subscriberBuffer is how many notifications a subscriber may have unread before new ones to it
// are dropped: a wake-up that finds the subscriber's queue full is not needed to wake it.
const subscriberBuffer = 256

// Listen's connection keeps these times.
const (
	listenIdle       = 30 * time.Second // without a notification, ping the connection this often
	listenPing       = 5 * time.Second  // a ping that takes longer ends the connection
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 10 * time.Second
)

// Notify tells every server on the database that topic happened (see the Topic constants),
// with payload (at most 7,999 bytes). On PostgreSQL it is a NOTIFY: delivered, after it
// commits, to the subscribers of every store whose Listen runs on the same database and
// schema, this one's too. On SQLite, where one server owns the database (see the package
// comment), it goes straight to this store's subscribers. It never waits for a subscriber.
func (s *Store) Notify(ctx context.Context, topic, payload string) error {
	if !s.pg {
		s.hub.publish(topic, payload)
		return nil
	}
	if _, err := s.w.ExecContext(ctx, "SELECT pg_notify($1, $2)", s.channel(topic), payload); err != nil {
		return wrap("notify "+topic, err)
	}
	return nil
}

// Subscribe returns a channel that receives the payload of each notification of topic, and a
// function that ends the subscription (and closes the channel). The channel is buffered; a
// notification that finds it full is dropped for this subscriber, so a slow subscriber never
// holds up the others or the sender. Subscribers must treat a notification as a hint to look
// again, never as the only way to learn of a change.
func (s *Store) Subscribe(topic string) (<-chan string, func()) {
	return s.hub.subscribe(topic)
}

// Listen delivers the notifications of other servers (and this one's) to the subscribers until
// ctx is done; it returns nil then. On PostgreSQL it keeps one connection of its own (outside
// the pool) LISTENing on the topics' channels, reconnecting with a growing pause when it
// breaks, and pings it when quiet, so a connection that died silently is noticed. After each
// (re)connect every subscriber gets "" (see the topics). On SQLite it only waits for ctx.
func (s *Store) Listen(ctx context.Context) error {
	if !s.pg {
		<-ctx.Done()
		return nil
	}
	backoff := listenBackoffMin
	for {
		err := s.listen(ctx, func() { backoff = listenBackoffMin })
		if ctx.Err() != nil {
			return nil
		}
		s.logger.Warn("store: listening for notifications of other servers failed; reconnecting",
			"err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listen connects, LISTENs, calls connected, and delivers notifications until the connection
// fails or ctx ends.
func (s *Store) listen(ctx context.Context, connected func()) error {
	cfg, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return fmt.Errorf("parse the database URL: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "flowd listen" // for pg_stat_activity
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenPing)
		defer cancel()
		conn.Close(closeCtx)
	}()
	byChannel := make(map[string]string, len(topics))
	for _, t := range topics {
		ch := s.channel(t)
		byChannel[ch] = t
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	connected()
	for _, t := range topics {
		s.hub.publish(t, "")
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			if t, ok := byChannel[n.Channel]; ok {
				s.hub.publish(t, n.Payload)
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err):
			return fmt.Errorf("wait for notifications: %w", err)
		}
		pingCtx, cancel := context.WithTimeout(ctx, listenPing)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}

// channel is topic's notification channel name on this store's schema. PostgreSQL's names
// have at most 63 bytes: a longer one names the schema by a hash.
func (s *Store) channel(topic string) string {
	name := "flowd." + s.schema + "." + topic
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(s.schema))
	return "flowd." + hex.EncodeToString(sum[:12]) + "." + topic
}

// hub fans notifications out to subscribers. The zero value is ready to use.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan string]struct{}
}

func (h *hub) subscribe(topic string) (<-chan string, func()) {
	ch := make(chan string, subscriberBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[string]map[chan string]struct{})
	}
	if h.subs[topic] == nil {
		h.subs[topic] = make(map[chan string]struct{})
	}
	h.subs[topic][ch] = struct{}{}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs[topic], ch)
			close(ch)
		})
	}
}

// publish hands payload to every subscriber of topic that has room for it.
func (h *hub) publish(topic, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[topic] {
		select {
		case ch <- payload:
		default:
		}
	}
}
