package executor

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/flowd/flowd/internal/run"
)

// workspace fills the job's volume before the container starts: the volume's root owned by
// the steps' user, and the checkout's tree when the job has one. The checkout runs on this
// host (Docker.Host, as for a job without image: as a step user when the server is root, so
// the repository's content never runs as the server), into the job's host workspace, which is
// removed once its tree is in the volume. The tree is copied with its modes, owned by the
// steps' user, links kept as links.
func (r *dockerRun) workspace(ctx context.Context) error {
	uid, gid, err := r.owner(ctx)
	if err != nil {
		return err
	}
	var src string
	if co := r.job.Checkout; co != nil {
		if r.d.Host == nil {
			return errors.New("this server cannot check out a repository for a job in a container (no host executor)")
		}
		host := Job{RunID: r.job.RunID, JobID: r.job.JobID, Workspace: r.job.Workspace, Checkout: co,
			Env: hostEnv(r.job.Env), Timeout: 0}
		defer func() {
			cctx, cancel := r.call()
			defer cancel()
			if err := r.d.Host.Cleanup(cctx, host); err != nil {
				r.logger.Warn("remove the checkout's host folder", "err", err)
			}
		}()
		res := r.d.Host.Run(ctx, host, r.out.w, nopReporter{})
		if res.Status != run.Success {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &checkoutError{msg: strings.TrimPrefix(res.Message, "checkout failed: ")}
		}
		src = r.job.Workspace
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarTree(pw, src, "workspace", uid, gid)) }()
	_, err = r.d.Client.CopyToContainer(ctx, r.id, client.CopyToContainerOptions{DestinationPath: "/", Content: pr})
	pr.CloseWithError(err)
	if err != nil {
		return r.d.failed("copy the workspace into the job's container", err)
	}
	return nil
}

// hostEnv is the environment of a container job's checkout on this host: the job's, with
// the server's PATH (the job's is the image's).
func hostEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") {
			out = append(out, kv)
		}
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	return append(out, "PATH="+path)
}

// nopReporter takes the step reports of a checkout run on its own (it has no steps).
type nopReporter struct{}

func (nopReporter) StepStarted(context.Context, int64) error { return nil }
func (nopReporter) StepFinished(context.Context, int64, run.Status, *int) error {
	return nil
}

// tarTree writes a tar of the folder src (none: "") under the name root, every entry owned by
// uid:gid; root itself has mode 0755.
func tarTree(w io.Writer, src, root string, uid, gid int) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: root + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: now}); err != nil {
		return err
	}
	if src != "" {
		err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
			if err != nil || path == src {
				return err
			}
			rel, err := filepath.Rel(src, path)
			if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(path); err != nil {
					return err
				}
			} else if !info.Mode().IsRegular() && !info.IsDir() {
				return nil // a checkout makes no devices, pipes or sockets
			}
			h, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			h.Name = root + "/" + filepath.ToSlash(rel)
			if info.IsDir() {
				h.Name += "/"
			}
			h.Uid, h.Gid, h.Uname, h.Gname = uid, gid, "", ""
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
		if err != nil {
			return fmt.Errorf("read the checkout: %w", err)
		}
	}
	return tw.Close()
}

// owner is the uid and gid the steps run as: container.user ("1000", "1000:1000"), else the
// image's user, a name looked up in the container's /etc/passwd and /etc/group.
func (r *dockerRun) owner(ctx context.Context) (int, int, error) {
	user := r.job.Container.User
	if user == "" {
		res, err := r.d.Client.ContainerInspect(ctx, r.id, client.ContainerInspectOptions{})
		if err != nil {
			return 0, 0, r.d.failed("inspect the job's container", err)
		}
		if res.Container.Config != nil {
			user = res.Container.Config.User
		}
	}
	if user == "" {
		return 0, 0, nil
	}
	name, group, _ := strings.Cut(user, ":")
	uid, uerr := strconv.Atoi(name)
	gid, gerr := strconv.Atoi(group)
	if uerr == nil && (group == "" || gerr == nil) {
		if group == "" {
			gid = uid
			if _, g, ok := r.lookup(ctx, "/etc/passwd", name, 0, 3); ok {
				gid = g
			}
		}
		return uid, gid, nil
	}
	if uerr != nil {
		u, g, ok := r.lookup(ctx, "/etc/passwd", name, 2, 3)
		if !ok {
			return 0, 0, fmt.Errorf("the image's user %q is not in its /etc/passwd: give the job container: {user: \"UID:GID\"}", name)
		}
		uid, gid = u, g
	}
	if group != "" && gerr != nil {
		g, _, ok := r.lookup(ctx, "/etc/group", group, 2, 2)
		if !ok {
			return 0, 0, fmt.Errorf("the image's group %q is not in its /etc/group: give the job container: {user: \"UID:GID\"}", group)
		}
		gid = g
	}
	return uid, gid, nil
}

// lookup reads a passwd-style file of the container and returns the numeric fields a and b
// of the entry whose field 0 (or, for a number, field 2) is key.
func (r *dockerRun) lookup(ctx context.Context, file, key string, a, b int) (int, int, bool) {
	res, err := r.d.Client.CopyFromContainer(ctx, r.id, client.CopyFromContainerOptions{SourcePath: file})
	if err != nil {
		return 0, 0, false
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		return 0, 0, false
	}
	sc := bufio.NewScanner(io.LimitReader(tr, 1<<20))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || (f[0] != key && (len(f) < 3 || f[2] != key)) {
			continue
		}
		x, err1 := strconv.Atoi(f[a])
		y, err2 := strconv.Atoi(f[b])
		if err1 == nil && err2 == nil {
			return x, y, true
		}
	}
	return 0, 0, false
}

// services makes and starts the job's services on its network, each reachable by its name.
func (r *dockerRun) services(ctx context.Context) error {
	d, job := r.d, r.job
	for _, s := range job.Container.Services {
		hc, _ := d.hostConfig(0, 0)
		hc.NetworkMode = container.NetworkMode(r.names.network())
		env := make([]string, 0, len(s.Env))
		for k, v := range s.Env {
			env = append(env, k+"="+v)
		}
		created, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:       r.names.service(s.Name),
			Config:     &container.Config{Image: s.Image, Env: env, Cmd: s.Command, Hostname: s.Name, Labels: d.labels(job, "service")},
			HostConfig: hc,
			NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				r.names.network(): {Aliases: []string{s.Name}},
			}},
		})
		if err != nil {
			return d.failed(fmt.Sprintf("create service %s from %s", s.Name, s.Image), err)
		}
		if _, err := d.Client.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return d.failed("start service "+s.Name, err)
		}
	}
	return nil
}

// serviceWait bounds how long the first step waits for a service's exposed ports.
const serviceWait = 30 * time.Second

// servicesUp waits, before the first step, until each service listens on the TCP ports its
// image exposes (up to serviceWait; then the job goes on with a note, as a service may listen
// elsewhere), and fails the job when a service has already exited, with the end of its log.
func (r *dockerRun) servicesUp(ctx context.Context) error {
	for _, s := range r.job.Container.Services {
		name := r.names.service(s.Name)
		deadline := time.Now().Add(serviceWait)
		for {
			res, err := r.d.Client.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
			if err != nil {
				return r.d.failed("inspect service "+s.Name, err)
			}
			st := res.Container.State
			if st != nil && !st.Running {
				return fmt.Errorf("service %s (%s) exited with code %d before the first step%s", s.Name, s.Image, st.ExitCode, r.logTail(ctx, name))
			}
			pending := r.closedPorts(res.Container)
			if len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				r.say(containerLimitNote, fmt.Sprintf("service %s does not answer on %s after %s; the steps start anyway", s.Name, strings.Join(pending, ", "), serviceWait))
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// closedPorts are the TCP ports c's image exposes that do not accept a connection yet, at c's
// address on the job's network. Unknown addresses (a daemon on another machine) count as open.
func (r *dockerRun) closedPorts(c container.InspectResponse) []string {
	if c.Config == nil || c.NetworkSettings == nil {
		return nil
	}
	ep := c.NetworkSettings.Networks[r.names.network()]
	if ep == nil || !ep.IPAddress.IsValid() {
		return nil
	}
	var closed []string
	for p := range c.Config.ExposedPorts {
		if p.Proto() != network.TCP {
			continue
		}
		addr := net.JoinHostPort(ep.IPAddress.String(), strconv.Itoa(int(p.Num())))
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			closed = append(closed, p.String())
			continue
		}
		conn.Close()
	}
	return closed
}

// logTail is ": " and the last lines of a container's log, for a failure message ("" when
// there are none).
func (r *dockerRun) logTail(ctx context.Context, id string) string {
	res, err := r.d.Client.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer res.Close()
	var b strings.Builder
	if _, err := stdcopy.StdCopy(&b, &b, io.LimitReader(res, 4096)); err != nil && b.Len() == 0 {
		return ""
	}
	tail := strings.Join(strings.Fields(b.String()), " ")
	if tail == "" {
		return ""
	}
	return ": " + tail
}

// step runs one step as an exec in the job's container; see localRun.step for what it returns.
func (r *dockerRun) step(ctx context.Context, step Step) (run.Status, *int, string) {
	r.lr().started(step.ID)
	r.say(headerFormat, step.Name)
	begin := time.Now()
	d := r.d
	// The exec's stream lives as long as the step: no deadline (the job's context ends the
	// step through stop); the calls after it get one each.
	sctx := context.WithoutCancel(r.base)
	ex, err := d.Client.ExecCreate(sctx, r.id, client.ExecCreateOptions{
		User: r.job.Container.User, WorkingDir: Workdir, Env: r.job.Env,
		AttachStdout: true, AttachStderr: true,
		Cmd: []string{"sh", "-e", "-c", step.Script},
	})
	var att client.ExecAttachResult
	if err == nil {
		att, err = d.Client.ExecAttach(sctx, ex.ID, client.ExecAttachOptions{})
	}
	cctx, cancel := r.call()
	defer cancel()
	if err != nil {
		reason := r.containerGone(cctx, "cannot start the step: "+d.failed("exec in the job's container", err).Error())
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(r.out, r.out, att.Reader)
		copied <- err
	}()
	// A process the step left in the background holding its output (`server &`) keeps
	// the output open: the daemon ends it about 2 s after the shell exits.
	var termAt time.Time
	select {
	case <-copied:
	case <-ctx.Done():
		termAt = time.Now()
		r.stop(ex.ID, copied)
	}
	att.Close()
	elapsed := time.Since(begin)
	cctx, cancel = r.call()
	defer cancel()

	if !termAt.IsZero() {
		return r.lr().interrupted(ctx, step)
	}
	code, err := r.exitCode(cctx, ex.ID)
	switch {
	case err != nil:
		reason := r.containerGone(cctx, fmt.Sprintf("the step's status is unknown (%s)", oneLine(err)))
		r.say(failFormat, step.Name, reason)
		return run.Failed, nil, reason
	case code == 0:
		r.say(successFormat, step.Name, formatDuration(elapsed))
		return run.Success, &code, ""
	}
	if r.oomKilled(code) {
		reason := fmt.Sprintf("killed: out of memory (OOMKilled): the job's memory limit is %s; raise container: memory", formatBytes(r.memory))
		if r.memory == 0 {
			reason = "killed: out of memory (OOMKilled): this Docker host ran out of memory"
		}
		r.say(failFormat, step.Name, reason)
		return run.Failed, &code, reason
	}
	if reason := r.containerGone(cctx, ""); reason != "" {
		r.say(failFormat, step.Name, reason)
		return run.Failed, &code, reason
	}
	r.say(exitFormat, step.Name, code, formatDuration(elapsed))
	return run.Failed, &code, fmt.Sprintf("exit code %d", code)
}

// exitCode waits for the exec to be over (its output can end a moment before) and returns its
// exit code.
func (r *dockerRun) exitCode(ctx context.Context, id string) (int, error) {
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		res, err := r.d.Client.ExecInspect(ctx, id, client.ExecInspectOptions{})
		if err != nil {
			return 0, err
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// oomKilled says whether a step that exited with code was killed for memory: the daemon
// reported an OOM kill in the container (its event can come a moment after the exec's end).
func (r *dockerRun) oomKilled(code int) bool {
	if code != 128+9 {
		return false
	}
	for range 20 {
		if r.ooms.Load() > 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// containerGone is the reason a step failed when the job's container is no longer running
// (it died, or was removed); otherwise it returns otherwise.
func (r *dockerRun) containerGone(ctx context.Context, otherwise string) string {
	res, err := r.d.Client.ContainerInspect(ctx, r.id, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return "the job's container was removed while the step ran"
	case err != nil || res.Container.State == nil || res.Container.State.Running:
		return otherwise
	}
	st := res.Container.State
	if st.OOMKilled {
		return fmt.Sprintf("the job's container was killed for using more than its memory (OOMKilled, limit %s)", formatBytes(r.memory))
	}
	return fmt.Sprintf("the job's container stopped (exit code %d) while the step ran", st.ExitCode)
}

// stop ends a canceled step: SIGTERM to every process of the container but its init and
// its waiting process (`kill -TERM -1`, run as root in it), then, after KillGrace, the
// container is killed. It returns once the step's output ended (or the container is dead).
func (r *dockerRun) stop(execID string, copied <-chan error) {
	d := r.d
	grace := d.KillGrace
	if r.job.KillGrace > 0 {
		grace = r.job.KillGrace
	}
	if grace <= 0 {
		grace = time.Second
	}
	ctx, cancel := r.call()
	defer cancel()
	kill, err := d.Client.ExecCreate(ctx, r.id, client.ExecCreateOptions{User: "0", Cmd: []string{"sh", "-c", "kill -TERM -1"}})
	if err == nil {
		_, err = d.Client.ExecStart(ctx, kill.ID, client.ExecStartOptions{Detach: true})
	}
	if err != nil {
		r.logger.Warn("signal the canceled step", "err", err)
	} else {
		select {
		case <-copied:
			return
		case <-time.After(grace):
		}
	}
	if _, err := d.Client.ContainerKill(ctx, r.id, client.ContainerKillOptions{Signal: "KILL"}); err != nil && !cerrdefs.IsNotFound(err) {
		r.logger.Warn("kill the job's container", "err", err)
	}
	select {
	case <-copied:
	case <-time.After(reportTimeout):
		r.logger.Warn("the canceled step's output did not end after its container was killed")
	}
}

// Cleanup removes what Run made for job: its container and services (killed), network and
// volume, by name; what is already gone is not an error. The checkout's host folder is
// removed by Run.
func (d *Docker) Cleanup(ctx context.Context, job Job) error {
	n := d.names(job)
	var errs []error
	ids := []string{n.job()}
	if job.Container != nil {
		for _, s := range job.Container.Services {
			ids = append(ids, n.service(s.Name))
		}
	}
	for _, id := range ids {
		if _, err := d.Client.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, d.failed("remove container "+id, err))
		}
	}
	if job.Container != nil && len(job.Container.Services) > 0 {
		if _, err := d.Client.NetworkRemove(ctx, n.network(), client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, d.failed("remove network "+n.network(), err))
		}
	}
	if _, err := d.Client.VolumeRemove(ctx, n.volume(), client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, d.failed("remove volume "+n.volume(), err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("executor: docker cleanup: %w", errors.Join(errs...))
	}
	return nil
}

// Sweep removes the containers, networks and volumes of this instance that no running job
// holds: with node set, every one labelled for that node (at start, nothing of this node
// runs yet); otherwise those of every node whose attempt live does not report running (the
// rescuer's sweep, for servers that died and share this daemon). It returns how many objects
// it removed.
func (d *Docker) Sweep(ctx context.Context, node string, live func(ctx context.Context, attempts []int64) (map[int64]bool, error)) (int, error) {
	f := client.Filters{}.Add("label", LabelInstance+"="+d.Instance)
	if node != "" {
		f.Add("label", LabelNode+"="+node)
	}
	cs, err := d.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0, d.failed("list containers", err)
	}
	ns, err := d.Client.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return 0, d.failed("list networks", err)
	}
	vs, err := d.Client.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return 0, d.failed("list volumes", err)
	}
	// Which attempts are still running, when that decides.
	keep := map[int64]bool{}
	if node == "" && live != nil {
		var ids []int64
		seen := map[int64]bool{}
		note := func(labels map[string]string) {
			if id, err := strconv.ParseInt(labels[LabelAttempt], 10, 64); err == nil && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		for _, c := range cs.Items {
			note(c.Labels)
		}
		for _, n := range ns.Items {
			note(n.Labels)
		}
		for _, v := range vs.Items {
			note(v.Labels)
		}
		if len(ids) == 0 {
			return 0, nil
		}
		if keep, err = live(ctx, ids); err != nil {
			return 0, fmt.Errorf("executor: docker sweep: %w", err)
		}
	}
	gone := func(labels map[string]string) bool {
		id, err := strconv.ParseInt(labels[LabelAttempt], 10, 64)
		return err != nil || !keep[id]
	}
	removed := 0
	var errs []error
	for _, c := range cs.Items {
		if !gone(c.Labels) {
			continue
		}
		if _, err := d.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	for _, n := range ns.Items {
		if !gone(n.Labels) {
			continue
		}
		if _, err := d.Client.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	for _, v := range vs.Items {
		if !gone(v.Labels) {
			continue
		}
		if _, err := d.Client.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("executor: docker sweep: %w", errors.Join(errs...))
	}
	return removed, nil
}
