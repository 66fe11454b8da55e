package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
)

// containerSweepEvery is how often a server removes the containers, networks and volumes of
// its installation that no live attempt holds (those of servers that died and never came back
// to sweep their own at start).
const containerSweepEvery = time.Minute

// newContainers builds the Docker executor of jobs with an image, on the daemon DOCKER_HOST
// names (the local socket by default), its objects labelled with node and with instance (every
// server of this installation shares its secret key). A daemon that answers has what this
// node left behind (a kill -9 mid-job) removed now; one that does not is no error, since jobs
// without image need none: the jobs with one fail, each saying so, until it answers.
func newContainers(ctx context.Context, cfg config.Config, node string, key []byte, host *executor.Local, logger *slog.Logger) (*executor.Docker, error) {
	log := logger.With("component", "docker")
	d, err := executor.NewDocker(log, node, executor.InstanceOf(key), host, executor.Limits{
		MaxCPUs: cfg.ContainerMaxCPUs, MaxMemory: int64(cfg.ContainerMaxMemory), Pids: cfg.ContainerPids,
	})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	version, err := d.Ping(pctx)
	if err != nil {
		level := slog.LevelInfo
		if cfg.JobExecutor == "docker" || !cfg.AllowHostJobs {
			level = slog.LevelError
		}
		log.Log(ctx, level, "Docker does not answer: jobs with an image fail until it does", "err", err)
		return d, nil
	}
	n, err := d.Sweep(ctx, node, nil)
	if err != nil {
		log.Warn("remove the containers a previous flowd of this node left", "err", err)
	}
	log.Info("jobs with an image run in Docker containers", "api", version, "default_image", cfg.DefaultImage, "removed_left_over", n)
	return d, nil
}

// sweepContainers removes, every containerSweepEvery and whenever now says so (the rescuer
// settled attempts) until ctx ends, the objects of this installation whose attempt is not live
// (any node's: a server that died for good, or was stopped past its lease, leaves its
// containers to the others sharing its daemon).
func sweepContainers(ctx context.Context, d *executor.Docker, st *store.Store, logger *slog.Logger, now <-chan struct{}) {
	live := func(ctx context.Context, ids []int64) (map[int64]bool, error) {
		states, err := st.AttemptStates(ctx, ids)
		if err != nil {
			return nil, err
		}
		m := make(map[int64]bool, len(states))
		for _, a := range states {
			m[a.ID] = true
		}
		return m, nil
	}
	t := time.NewTicker(containerSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-now:
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := d.Sweep(sctx, "", live)
		cancel()
		if err != nil && ctx.Err() == nil {
			logger.Debug("sweep left-over containers", "err", err)
		}
		if n > 0 {
			logger.Info("removed containers, networks and volumes of jobs no longer running", "count", n)
		}
	}
}

// policy is what the server allows of pipelines saved on it (checked at save time).
func policy(cfg config.Config) pipeline.Policy {
	return pipeline.Policy{
		RequireImage: !cfg.AllowHostJobs,
		DefaultImage: cfg.DefaultImage,
		MaxCPUs:      cfg.ContainerMaxCPUs,
		MaxMemory:    int64(cfg.ContainerMaxMemory),
	}
}
