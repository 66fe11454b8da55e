// Package app wires flowd together: it builds the store, the services and the HTTP server from a
// Config, runs them, and stops them in order: stop accepting requests, cancel running jobs and
// record their statuses, drain the log writer, close the database.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/scheduler"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/web"
)

// Run starts flowd and blocks until ctx is done, then shuts down cleanly. out receives the
// messages for the person who started it: the generated admin password and the address.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger, out io.Writer) error {
	if err := privateFolder(cfg.Data); err != nil {
		return err
	}
	if v := os.Getenv("FLOWD_TEST_CLOCK_OFFSET"); v != "" {
		// A test hook: this process's clock, as far as it stamps records, is off by v.
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("app: FLOWD_TEST_CLOCK_OFFSET=%q: %w", v, err)
		}
		store.SetClockOffset(d)
		logger.Warn("this server's clock is shifted for a test", "offset", d)
	}
	key, err := secret.LoadKey(cfg.SecretKey, cfg.Data)
	if err != nil {
		return err
	}
	box, err := secret.New(key)
	if err != nil {
		return err
	}
	unlock, err := lockSQLite(cfg.Database)
	if err != nil {
		return err
	}
	defer unlock() // after the store is closed
	st, err := store.Open(ctx, cfg.Database, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	node, stopNode, err := startNode(ctx, st, cfg, logger)
	if err != nil {
		return err
	}
	defer stopNode()
	if err := bootstrapAdmin(ctx, st, cfg, logger, out); err != nil {
		return err
	}

	m := metrics.New()
	if err := m.WatchStore(st); err != nil {
		return err
	}
	exec, releaseUIDs, err := newExecutor(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer releaseUIDs() // when Run returns: the scheduler has stopped every job by then
	requireTrusted := exec.Users == nil
	holder := store.Holder{Node: node.Name, Instance: node.Instance} // the instance registered in nodes
	containers, err := newContainers(ctx, cfg, node.Name, key, exec, logger)
	if err != nil {
		return err
	}
	defer containers.Close()
	appender := logs.NewAppender(st, logger.With("component", "logs"))
	appender.JobLimit = int64(cfg.MaxJobLog)
	cl := newCluster(st, cfg, logger) // what is shared with other servers on the database
	cl.announce()
	// Agents' claims wait on agentWork; whatever wakes the scheduler wakes them too.
	agentWork := &api.Signal{}
	var sched *scheduler.Scheduler
	wakeHere := func() { sched.Wake(); agentWork.Wake() }
	sched = scheduler.New(scheduler.Config{
		Store:          st,
		Executor:       executor.Router{Host: exec, Containers: containers},
		Logs:           appender,
		Box:            box,
		Slots:          cfg.Executors,
		Labels:         cfg.Labels,
		Workspace:      cfg.Workspaces,
		Metrics:        m,
		Logger:         logger.With("component", "scheduler"),
		RequireTrusted: requireTrusted,
		DefaultImage:   cfg.DefaultImage,
		RequireImage:   !cfg.AllowHostJobs,
		Holder:         holder,
		TTL:            cfg.LeaseTTL,
		WakeOthers:     cl.wakeWork(agentWork.Wake), // agents and the others: the scheduler wakes itself
	})
	sweepNow := make(chan struct{}, 1)
	rescuer := &scheduler.Rescuer{
		Store:        st,
		Holder:       holder,
		TTL:          cfg.LeaseTTL,
		Metrics:      m,
		Logger:       logger.With("component", "rescuer"),
		AllInstances: st.Dialect() == "sqlite", // one server per SQLite database
		Rescued: func(runID int64) {
			select { // the rescued attempts' containers go now
			case sweepNow <- struct{}{}:
			default:
			}
			appender.Notify(runID) // followers here; cl tells those of the other servers
			cl.logChanged(runID)
			cl.wakeWork(wakeHere)() // a retried job is queued again
		},
	}
	// Jobs this node's previous instance was running (it crashed or was killed) are settled
	// now, not after their leases run out.
	if err := rescuer.RescuePrevious(ctx); err != nil {
		return err
	}
	sweepWorkspaces(ctx, sched, cfg.Workspaces, st, logger)
	triggers := &trigger.Service{Store: st, Box: box, Wake: cl.wakeWork(wakeHere), Cancel: sched.Cancel, RequireTrusted: requireTrusted,
		DefaultImage: cfg.DefaultImage}
	backlog := &trigger.Backlog{Store: st, MaxRuns: cfg.MaxQueuedRuns, MaxSeconds: cfg.MaxQueueSeconds,
		Logger: logger.With("component", "backlog")}
	if err := m.WatchQueue(func(ctx context.Context) metrics.Queue {
		q := backlog.Server(ctx)
		secs, ok := q.Seconds()
		return metrics.Queue{Queued: q.Queued, Seconds: secs, SecondsKnown: ok, MaxRuns: q.MaxRuns, MaxSeconds: q.MaxSeconds}
	}); err != nil {
		return err
	}
	signIn := auth.NewThrottle(10, 10*time.Minute) // password attempts per user and address
	cl.share(signIn, appender, key)
	stopping := make(chan struct{}) // closed as the server stops: waiting claims answer at once
	srv := &api.Server{
		Store:          st,
		Triggers:       triggers,
		Box:            box,
		LogChanged:     appender.Changed,
		Canceler:       sched,
		Metrics:        m,
		ExternalURL:    cfg.ExternalURL,
		MaxBody:        cfg.MaxBody,
		WebhookRate:    cfg.WebhookRate,
		WebhookBurst:   cfg.WebhookBurst,
		WebhookLimiter: cl.webhookLimiter(),
		Queue:          backlog,
		SignIn:         signIn,
		Logger:         logger.With("component", "api"),
		RequireTrusted: requireTrusted,
		Policy:         policy(cfg),
		MetricsToken:   cfg.MetricsToken,
		AgentWork:      agentWork,
		WorkDone:       cl.wakeWork(wakeHere),
		LogNotify:      appender.Notify,
		LeaseTTL:       cfg.LeaseTTL,
		Stopping:       stopping,
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("app: listen: %w", err)
	}
	if cfg.ExternalURL == "http://"+cfg.Addr { // derived from --addr, which may have been port 0
		srv.ExternalURL = "http://" + ln.Addr().String()
	}
	httpSrv := &http.Server{
		Handler:           web.Combine(srv.Handler(), web.New(web.Config{Store: st, ExternalURL: srv.ExternalURL, SignIn: signIn, Logger: logger.With("component", "web")})),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(out, "flowd is listening on http://%s\n", ln.Addr())
	if cfg.MetricsAddr != "" {
		metricsSrv, err := serveMetrics(cfg.MetricsAddr, srv.MetricsHandler(), logger)
		if err != nil {
			_ = ln.Close()
			return err
		}
		fmt.Fprintf(out, "flowd serves /metrics on http://%s/metrics\n", metricsSrv.Addr)
		defer metricsSrv.Close()
	}

	// The log appender outlives the scheduler: jobs canceled at shutdown still write their
	// last lines.
	logsCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	logsDone := make(chan error, 1)
	go func() { logsDone <- appender.Run(logsCtx) }()

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	schedDone := make(chan error, 1)
	go func() { schedDone <- sched.Run(runCtx) }()
	rescueDone := make(chan struct{})
	go func() { defer close(rescueDone); rescuer.Run(runCtx) }()
	cancels, unsubscribe := st.Subscribe(store.TopicCancel)
	defer unsubscribe()
	go func() {
		for range cancels { // a cancel requested on any server: this one's jobs may be among them
			sched.CancelCheck()
		}
	}()
	clusterDone := make(chan struct{})
	go func() { defer close(clusterDone); cl.run(runCtx, wakeHere, appender, signIn.Window) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- httpSrv.Serve(ln) }()
	pruneDone := make(chan struct{})
	go func() {
		defer close(pruneDone)
		pruneDeliveries(runCtx, st, cfg, logger)
	}()
	containersDone := make(chan struct{})
	go func() {
		defer close(containersDone)
		sweepContainers(runCtx, containers, st, logger.With("component", "docker"), sweepNow)
	}()
	expireDone := make(chan struct{})
	go func() { defer close(expireDone); expireLogs(runCtx, st, time.Duration(cfg.LogRetention), logger) }()
	schedulesDone := make(chan struct{})
	go func() {
		defer close(schedulesDone)
		runSchedules(runCtx, st, triggers, logger.With("component", "schedules"))
	}()
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		runNotifications(runCtx, st, box, m, srv.ExternalURL, cfg.Version, logger.With("component", "notify"))
	}()

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("stopping")
	case serveErr = <-serveDone:
		logger.Error("http server stopped", "err", serveErr)
	}
	stopRun()
	close(stopping)

	// Stop accepting; requests in flight (log followers among them) end as their runs end.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- httpSrv.Shutdown(shutdownCtx) }()

	schedErr := <-schedDone // running jobs canceled, their statuses written
	<-rescueDone
	<-pruneDone
	<-clusterDone
	<-expireDone
	<-schedulesDone
	<-notifyDone
	<-containersDone
	stopLogs()
	logsErr := <-logsDone // every log line committed
	if err := <-shutdownDone; err != nil {
		logger.Warn("closing open connections", "err", err)
		_ = httpSrv.Close()
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	logger.Info("stopped")
	return errors.Join(serveErr, schedErr, logsErr)
}

// newInstance is a random id of this process, told apart from the node's earlier and later
// ones: the attempts it claims carry it (see store.Holder).
func newInstance() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// bootstrapAdmin creates the user admin on an empty database, with cfg.AdminPassword or a random
// password printed on out. On a database with users it changes nothing, but says so when
// FLOWD_ADMIN_PASSWORD is set and is not admin's password, since whoever set it expects to sign
// in with it; cfg.ResetAdminPassword makes it set admin's password anyway (resetAdmin).
func bootstrapAdmin(ctx context.Context, st *store.Store, cfg config.Config, logger *slog.Logger, out io.Writer) error {
	n, err := st.UserCount(ctx)
	if err != nil {
		return err
	}
	if n > 0 && cfg.ResetAdminPassword {
		return resetAdmin(ctx, st, cfg.AdminPassword, logger, out)
	}
	if n > 0 {
		if cfg.AdminPassword == "" {
			return nil
		}
		u, err := st.UserGet(ctx, "admin")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && auth.CheckPassword(u.PasswordHash, cfg.AdminPassword) {
			return nil
		}
		msg := "FLOWD_ADMIN_PASSWORD is ignored: this database has users already, and the variable only sets the first admin's password on an empty database"
		logger.Warn(msg, "fix", "sign in with admin's current password and run `flowd user passwd admin`, or start once with --reset-admin-password")
		fmt.Fprintf(out, "flowd: %s.\n(sign in with admin's current password, e.g. the one printed at the first start, and change it with `flowd user passwd admin`;\nor start once with `flowd serve --reset-admin-password` to give admin the password in FLOWD_ADMIN_PASSWORD)\n", msg)
		return nil
	}
	hash, generated, err := adminPassword(cfg.AdminPassword)
	if err != nil {
		return err
	}
	if _, err := st.UserCreate(ctx, "admin", hash, true); err != nil {
		if errors.Is(err, store.ErrConflict) { // another server made it first
			return nil
		}
		return err
	}
	if generated != "" {
		fmt.Fprintf(out, "created the user admin with the password %s\n(it is shown only this once; sign in with `flowd login --user admin` and change it)\n", generated)
	} else {
		fmt.Fprintln(out, "created the user admin with the password from FLOWD_ADMIN_PASSWORD")
	}
	return nil
}

// resetAdmin gives the user admin password (a random one, printed on out, when ""), makes it an
// enabled global admin and ends its web sessions; it creates admin if it is gone.
func resetAdmin(ctx context.Context, st *store.Store, password string, logger *slog.Logger, out io.Writer) error {
	hash, generated, err := adminPassword(password)
	if err != nil {
		return err
	}
	u, err := st.UserGet(ctx, "admin")
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = st.UserCreate(ctx, "admin", hash, true)
	case err == nil:
		yes, no := true, false
		_, err = st.UserUpdate(ctx, u.ID, store.UserUpdate{PasswordHash: &hash, Admin: &yes, Disabled: &no})
	}
	if err != nil {
		return fmt.Errorf("app: reset the admin password: %w", err)
	}
	logger.Warn("the password of the user admin was reset (--reset-admin-password)")
	if generated != "" {
		fmt.Fprintf(out, "reset the password of the user admin to %s\n(it is shown only this once; start without --reset-admin-password from now on)\n", generated)
	} else {
		fmt.Fprintln(out, "reset the password of the user admin to the one in FLOWD_ADMIN_PASSWORD (start without --reset-admin-password from now on)")
	}
	return nil
}

// adminPassword hashes password for the user admin, or a new random one when it is "", which
// it also returns as generated, to be shown once.
func adminPassword(password string) (hash, generated string, err error) {
	if password == "" {
		if password, err = auth.RandomPassword(); err != nil {
			return "", "", err
		}
		generated = password
	}
	if hash, err = auth.HashPassword(password); err != nil {
		return "", "", fmt.Errorf("FLOWD_ADMIN_PASSWORD: %w", err)
	}
	return hash, generated, nil
}

// pruneDeliveries bounds the delivery log (count and age per pipeline) once a minute until ctx
// is done.
func pruneDeliveries(ctx context.Context, st *store.Store, cfg config.Config, logger *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		n, err := st.DeliveryPrune(ctx, cfg.DeliveryKeep, cfg.DeliveryMaxAge)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("prune deliveries", "err", err)
		case n > 0:
			logger.Info("pruned deliveries", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveMetrics serves h (api.Server.MetricsHandler) on addr (--metrics-addr) until it is
// closed; its Addr is the address it listens on.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: listen for metrics (--metrics-addr): %w", err)
	}
	s := &http.Server{
		Addr:              ln.Addr().String(),
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}
