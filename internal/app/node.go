package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/store"
)

// instanceFile, in the data folder, holds the instance id of the last server started on it,
// and is locked (flock) while that server runs.
const instanceFile = "node-instance"

// nodeIdentity is who this server is among the servers sharing the database.
type nodeIdentity struct {
	Name     string // --node-name
	Instance string // this start's random id: attempts this process claims carry it
	// Previous is the instance of the last server started on this data folder ("" on its
	// first start): attempts it still holds were left by a process that is gone.
	Previous string
}

// startNode registers this server in the nodes table as a new instance of cfg.NodeName and
// heartbeats every LeaseTTL/3 until ctx is done or stop is called.
//
// It refuses to start while another live server (heartbeat within its own lease TTL, by the
// database's clock) holds the name, unless that server is this data folder's previous one: a server
// killed with kill -9 leaves a fresh heartbeat behind, and its restart must not wait a whole
// TTL for it. The data folder's lock guarantees that previous server is gone.
func startNode(ctx context.Context, st *store.Store, cfg config.Config, logger *slog.Logger) (n nodeIdentity, stop func(), err error) {
	f, previous, err := lockInstanceFile(cfg.Data)
	if err != nil {
		return nodeIdentity{}, nil, err
	}
	n = nodeIdentity{Name: cfg.NodeName, Instance: newInstance(), Previous: previous}
	self := store.Node{Name: n.Name, Kind: store.NodeServer, Instance: n.Instance, Version: cfg.Version, Addr: nodeAddr(cfg.Addr), TTL: cfg.LeaseTTL,
		Executors: cfg.Executors, Labels: cfg.Labels}
	prev, err := st.NodeRegister(ctx, self, n.Previous)
	if errors.Is(err, store.ErrConflict) {
		f.Close()
		return nodeIdentity{}, nil, fmt.Errorf("app: another live server uses the node name %q (at %s, version %s, last heartbeat %s by the database's clock): give each server its own --node-name (FLOWD_NODE_NAME); if that server has stopped, the name is free %v after its last heartbeat (its --lease-ttl)",
			n.Name, orUnknown(prev.Addr), orUnknown(prev.Version), prev.HeartbeatAt.Format(time.RFC3339), prev.TTL)
	}
	if err != nil {
		f.Close()
		return nodeIdentity{}, nil, fmt.Errorf("app: register this server as node %q: %w", n.Name, err)
	}
	if err := writeInstance(f, n.Instance); err != nil {
		f.Close()
		return nodeIdentity{}, nil, err
	}
	log := logger.With("node", n.Name, "instance", n.Instance)
	log.Info("registered as a node", "previous_instance", n.Previous, "replaced_live", prev.Live && prev.Instance != n.Instance)

	hbCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		heartbeat(hbCtx, st, self, cfg.LeaseTTL, log)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			f.Close() // drops the data folder's lock
		})
	}
	return n, stop, nil
}

// heartbeat renews self's heartbeat every ttl/3 until ctx is done. A renewal that fails is
// tried again at the next tick (the name stays this server's for ttl); a row that vanished is
// registered again. When another process has taken the name, which it may only once this
// server's heartbeat is older than ttl (e.g. the process was stopped), heartbeats end: two
// processes must not fight over one row.
func heartbeat(ctx context.Context, st *store.Store, self store.Node, ttl time.Duration, log *slog.Logger) {
	every := ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		beatCtx, cancel := context.WithTimeout(ctx, every)
		err := st.NodeHeartbeat(beatCtx, self.Name, self.Instance)
		if errors.Is(err, store.ErrNotFound) {
			_, err = st.NodeRegister(beatCtx, self, self.Instance)
		}
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, store.ErrConflict):
			log.Error("another server took this node name after this server missed its heartbeats; this server no longer heartbeats: stop it, or give each server its own --node-name", "err", err)
			return
		default:
			log.Warn("node heartbeat failed; trying again", "err", err, "retry_in", every)
		}
	}
}

// lockInstanceFile opens the data folder's instance file, locks it for the life of the
// process and returns it with the instance it names ("" when none). The lock refuses a second
// server on the same data folder, whose "previous instance" would be a live one.
func lockInstanceFile(data string) (*os.File, string, error) {
	p := filepath.Join(data, instanceFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("app: open %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("app: another flowd server is running on the data folder %s: give each server a data folder of its own (--data)", data)
	}
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("app: read %s: %w", p, err)
	}
	previous := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(previous); err != nil || len(previous) != 32 {
		previous = "" // a file cut short by a crash: no previous instance to succeed
	}
	return f, previous, nil
}

// writeInstance replaces the content of the instance file with id, durably.
func writeInstance(f *os.File, id string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("app: write %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(id+"\n"), 0); err != nil {
		return fmt.Errorf("app: write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("app: write %s: %w", f.Name(), err)
	}
	return nil
}

// nodeAddr is where people may find this server: the listen address, with this host's name
// when it listens on every interface, and without the port when the system picks one (port 0).
func nodeAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	if port == "0" {
		return host
	}
	return net.JoinHostPort(host, port)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
