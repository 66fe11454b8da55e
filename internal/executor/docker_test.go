package executor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/flowd/flowd/internal/dockertest"
	"github.com/flowd/flowd/internal/run"
)

// dockerAttempt numbers the attempts of these tests' jobs, so parallel tests never share a name.
var dockerAttempt atomic.Int64

// newDocker is a Docker executor of an instance of the test's own on the tests' daemon.
func newDocker(t *testing.T) *Docker {
	t.Helper()
	c := dockertest.Client(t)
	d := &Docker{Client: c, Node: "test-node", Instance: InstanceOf([]byte(t.Name() + time.Now().String())),
		Host: newLocal(t), KillGrace: time.Second, Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if n, err := d.Sweep(ctx, d.Node, nil); err != nil || n > 0 {
			t.Errorf("the test left %d objects (%v)", n, err)
		}
	})
	return d
}

// containerJob is a job of the test image running scripts.
func containerJob(t *testing.T, scripts ...string) Job {
	job := newJob(t, scripts...)
	job.Attempt = dockerAttempt.Add(1)
	job.Env = []string{"abc=456", "FLOWD_WORKSPACE=" + Workdir}
	job.Container = &run.Container{Image: dockertest.Image, Pull: run.PullNever}
	return job
}

// runDocker runs job to its end and cleans it up.
func runDocker(t *testing.T, d *Docker, ctx context.Context, job Job) (Result, string, []string) {
	t.Helper()
	var out syncBuffer
	rep := &recorder{t: t}
	res := d.Run(ctx, job, &out, rep)
	t.Logf("result %+v\noutput:\n%s", res, out.String())
	if err := d.Cleanup(context.Background(), job); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	return res, out.String(), rep.get()
}

// objects are the containers, networks and volumes labelled with job's attempt.
func objects(t *testing.T, d *Docker, job Job) []string {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", fmt.Sprintf("%s=%d", LabelAttempt, job.Attempt)).Add("label", LabelInstance+"="+d.Instance)
	var out []string
	cs, err := d.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Items {
		out = append(out, "container "+c.Names[0]+" "+c.Labels[LabelRole])
	}
	ns, err := d.Client.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		out = append(out, "network "+n.Name)
	}
	vs, err := d.Client.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Items {
		out = append(out, "volume "+v.Name)
	}
	slices.Sort(out)
	return out
}

// TestDockerSteps: the variables reach a step as environment, a file of step 1 is there in
// step 2, in /workspace; a failing step's exit code fails the job and skips the rest; a
// background process is gone with the job, and so is every object of the attempt.
func TestDockerSteps(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t,
		`echo "abc=$abc"; echo "hostile=$HOSTILE"; pwd; echo kept > f; sleep 300 &`,
		`cat f; test "$(cat /proc/1/comm)" != sh && echo init-is-pid-1`,
		`echo "$ABC_MISSING" ; exit 7`,
		`echo never`)
	job.Env = append(job.Env, `HOSTILE=$(touch /tmp/pwned); echo pwned`)
	res, out, events := runDocker(t, d, context.Background(), job)
	if res.Status != run.Failed || res.Message != `step "s3" failed: exit code 7` {
		t.Errorf("result %+v, want step s3's exit code 7", res)
	}
	for _, want := range []string{"abc=456\n", "/workspace\n", "kept\n", "init-is-pid-1\n", "✖ s3: exit code 7", "○ s4: skipped",
		"hostile=$(touch /tmp/pwned); echo pwned\n", "⬢ container " + dockertest.Image + " ready in "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	want := []string{"1:running", "1:success:0", "2:running", "2:success:0", "3:running", "3:failed:7", "4:skipped"}
	if !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if left := objects(t, d, job); len(left) > 0 {
		t.Errorf("left after cleanup: %v", left)
	}
}

// TestDockerLongStep: a step longer than any daemon call's deadline keeps its output.
func TestDockerLongStep(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t, `echo first; sleep `+fmt.Sprint(int(reportTimeout/time.Second)+2)+`; echo last`)
	res, out, _ := runDocker(t, d, context.Background(), job)
	if got := stepOutput(t, out, "s1"); res.Status != run.Success || got != "first\nlast\n" {
		t.Errorf("result %+v, output %q", res, got)
	}
}

// TestDockerUser: container: user runs the steps as that uid, and the workspace is theirs.
func TestDockerUser(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t, `id -u; id -g; touch mine && ls -ln mine`)
	job.Container.User = "1000:1001"
	res, out, _ := runDocker(t, d, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("result %+v", res)
	}
	if got := stepOutput(t, out, "s1"); !strings.HasPrefix(got, "1000\n1001\n") || !strings.Contains(got, " 1000 ") {
		t.Errorf("step output %q, want uid 1000, gid 1001 owning its file", got)
	}
}

// TestDockerCancel: cancel and the job timeout end the step's processes, those that ignore
// SIGTERM too, within 2 s; the job is canceled (or failed on timeout).
func TestDockerCancel(t *testing.T) {
	t.Parallel()
	for _, timeout := range []bool{false, true} {
		t.Run(fmt.Sprintf("timeout=%v", timeout), func(t *testing.T) {
			t.Parallel()
			d := newDocker(t)
			job := containerJob(t, `echo started; (trap '' TERM; sleep 600) & sleep 600`, "echo never")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if timeout {
				job.Timeout = 3 * time.Second
			}
			var out syncBuffer
			rep := &recorder{t: t}
			done := make(chan Result, 1)
			go func() { done <- d.Run(ctx, job, &out, rep) }()
			waitFor(t, 30*time.Second, "the step to start", func() bool { return strings.Contains(out.String(), "started\n") })
			begin := time.Now()
			if timeout {
				begin = time.Now().Add(-time.Second) // a bound on the remaining time is asserted below
			} else {
				cancel()
			}
			var res Result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Run did not return after the stop; output %q", out.String())
			}
			if !timeout {
				if took := time.Since(begin); took > 2*time.Second {
					t.Errorf("Run returned %v after the cancel, want < 2s", took)
				}
			}
			t.Logf("result %+v\noutput:\n%s", res, out.String())
			want, line := run.Canceled, "✖ s1: canceled\n"
			if timeout {
				want, line = run.Failed, "✖ s1: timed out after 3s\n"
			}
			if res.Status != want || !strings.Contains(out.String(), line) || strings.Contains(out.String(), "never\n") {
				t.Errorf("result %+v, want %s with %q", res, want, line)
			}
			if events := rep.get(); !slices.Equal(events, []string{"1:running", "1:" + string(want), "2:skipped"}) {
				t.Errorf("events %v", events)
			}
			// Nothing of the step runs in the container any more.
			res2, err := d.Client.ContainerInspect(context.Background(), d.names(job).job(), client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st := res2.Container.State; st.Running {
				top, _ := d.Client.ContainerTop(context.Background(), d.names(job).job(), client.ContainerTopOptions{})
				t.Errorf("the job's container still runs after the stop: %v", top.Processes)
			}
			if err := d.Cleanup(context.Background(), job); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDockerOOM: a step over the job's memory limit fails as OOMKilled, saying so.
func TestDockerOOM(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t, `x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}`)
	job.Container.Memory = 16 << 20
	res, out, _ := runDocker(t, d, context.Background(), job)
	if res.Status != run.Failed || !strings.Contains(res.Message, "OOMKilled") || !strings.Contains(res.Message, "16MiB") {
		t.Errorf("result %+v, want failed for OOMKilled with the 16MiB limit", res)
	}
	if !strings.Contains(out, "✖ s1: killed: out of memory (OOMKilled)") {
		t.Errorf("output lacks the OOM line")
	}
}

// TestDockerLimitsCapped: a job asking for more than the server's maxima gets the maxima, and
// its log says so; the container has them and a pids limit.
func TestDockerLimitsCapped(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	d.Limits = Limits{MaxCPUs: 1, MaxMemory: 64 << 20, Pids: 100}
	job := containerJob(t, `cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max`)
	job.Container.CPUs, job.Container.Memory = 4, 1<<30
	res, out, _ := runDocker(t, d, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"cpus 4 is over this server's maximum; the job gets 1", "memory 1GiB is over this server's maximum; the job gets 64MiB", "100\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestDockerFailures: each way a container cannot start fails the job with one sentence
// saying what to do, every step skipped, nothing left behind.
func TestDockerFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(*Docker, *Job)
		want  string
	}{
		{"missing image, pull never", func(d *Docker, j *Job) { j.Container.Image = "flowd-test/nothing:1" },
			"image flowd-test/nothing:1 is not on this Docker host and pull: never forbids pulling it"},
		{"pull fails offline", func(d *Docker, j *Job) {
			j.Container.Image, j.Container.Pull = "registry.invalid/flowd/nothing:1", run.PullIfNotPresent
		}, "cannot pull image registry.invalid/flowd/nothing:1 ("},
		{"daemon unreachable", func(d *Docker, j *Job) {
			c, err := client.New(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
			if err != nil {
				panic(err)
			}
			d.Client = c
		}, "cannot reach Docker at unix:///nonexistent/docker.sock (connect: no such file or directory): start the Docker daemon"},
		{"daemon silent", func(d *Docker, j *Job) {
			sock := filepath.Join(t.TempDir(), "silent.sock")
			ln, err := net.Listen("unix", sock) // accepts, never answers
			if err != nil {
				panic(err)
			}
			t.Cleanup(func() { ln.Close() })
			c, err := client.New(client.WithHost("unix://"+sock), client.WithVersion("1.41"))
			if err != nil {
				panic(err)
			}
			d.Client, d.DaemonWait = c, time.Second
		}, "did not answer in 1s: check that its daemon runs and is not stuck"},
		{"service exits", func(d *Docker, j *Job) {
			j.Container.Services = []run.Service{{Name: "db", Image: dockertest.Image, Command: []string{"sh", "-c", "echo db broke; exit 3"}}}
		}, "service db (" + dockertest.Image + ") exited with code 3 before the first step: db broke"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := *newDocker(t) // a copy: the sweep at the test's end uses the real daemon
			job := containerJob(t, "echo never")
			tc.setup(&d, &job)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out syncBuffer
			rep := &recorder{t: t}
			res := d.Run(ctx, job, &out, rep)
			t.Logf("result %+v\noutput:\n%s", res, out.String())
			if res.Status != run.Failed || !strings.Contains(res.Message, tc.want) || !strings.Contains(out.String(), tc.want) {
				t.Errorf("result %+v, want failed with %q in the message and the log", res, tc.want)
			}
			if strings.Contains(res.Message, "\n") {
				t.Errorf("message is not one line: %q", res.Message)
			}
			if events := rep.get(); !slices.Equal(events, []string{"1:skipped"}) {
				t.Errorf("events %v, want the step skipped", events)
			}
			if strings.HasPrefix(tc.name, "daemon ") {
				return
			}
			if err := d.Cleanup(context.Background(), job); err != nil {
				t.Error(err)
			}
			if left := objects(t, &d, job); len(left) > 0 {
				t.Errorf("left after cleanup: %v", left)
			}
		})
	}
}

// TestDockerService: a service is reachable from the steps by its name, and is removed with
// the job, its network too.
func TestDockerService(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t, `for i in $(seq 50); do wget -q -O - http://web:8080/passwd && exit 0; sleep 0.1; done; exit 1`)
	job.Container.Services = []run.Service{{Name: "web", Image: dockertest.Image, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/etc"}}}
	var out syncBuffer
	res := d.Run(context.Background(), job, &out, &recorder{t: t})
	t.Logf("result %+v\noutput:\n%s", res, out.String())
	if res.Status != run.Success || !strings.Contains(out.String(), "root:x:0:0") {
		t.Errorf("result %+v: the step did not reach the service", res)
	}
	if got := objects(t, d, job); len(got) != 4 {
		t.Errorf("objects while the job ends: %v, want its container, the service, network and volume", got)
	}
	if err := d.Cleanup(context.Background(), job); err != nil {
		t.Error(err)
	}
	if left := objects(t, d, job); len(left) > 0 {
		t.Errorf("left after cleanup: %v", left)
	}
}

// TestDockerNetworkNone: network: none leaves the job without a network.
func TestDockerNetworkNone(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	job := containerJob(t, `ls /sys/class/net`)
	job.Container.Network = run.NetworkNone
	res, out, _ := runDocker(t, d, context.Background(), job)
	if got := stepOutput(t, out, "s1"); res.Status != run.Success || got != "lo\n" {
		t.Errorf("result %+v, interfaces %q: want lo only", res, got)
	}
}

// TestDockerCheckout: a job with a Git source finds its commit checked out in /workspace,
// owned by the steps' user; the checkout's host folder is gone.
func TestDockerCheckout(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	repo := newRepo(t)
	job := containerJob(t, `cat file; ls -ln file | awk '{print $3}'; test -d .git && echo has-git`)
	job.Container.User = "1000"
	job.Checkout = &Checkout{URL: repo.bare, SHA: repo.recent, Ref: "refs/heads/main"}
	res, out, _ := runDocker(t, d, context.Background(), job)
	if res.Status != run.Success {
		t.Fatalf("result %+v", res)
	}
	if got := stepOutput(t, out, "s1"); got != "recent\n1000\nhas-git\n" {
		t.Errorf("step output %q, want the commit's file, owned by 1000, and .git", got)
	}
	if _, err := dirExists(job.Workspace); err == nil {
		t.Errorf("the checkout's host folder %s is left", job.Workspace)
	}
}

// TestDockerSweep: Sweep removes what a killed server left of its node (all of it), and, across
// nodes, what no live attempt holds.
func TestDockerSweep(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	ctx := context.Background()
	// Two jobs "left running" by a killed server: Run returns, nothing cleans up.
	a, b := containerJob(t, "sleep 300 &"), containerJob(t, "sleep 300 &")
	for _, job := range []Job{a, b} {
		if res := d.Run(ctx, job, &syncBuffer{}, &recorder{t: t}); res.Status != run.Success {
			t.Fatalf("result %+v", res)
		}
	}
	// Across nodes, only the attempt that is not live goes.
	live := func(_ context.Context, ids []int64) (map[int64]bool, error) {
		return map[int64]bool{b.Attempt: true}, nil
	}
	n, err := d.Sweep(ctx, "", live)
	if err != nil || n != 2 {
		t.Errorf("sweep across nodes removed %d (%v), want a's container and volume", n, err)
	}
	if left := objects(t, d, a); len(left) > 0 {
		t.Errorf("a's objects left: %v", left)
	}
	if kept := objects(t, d, b); len(kept) != 2 {
		t.Errorf("b's objects: %v, want its container and volume kept", kept)
	}
	// At start, everything of the node.
	if n, err := d.Sweep(ctx, d.Node, nil); err != nil || n != 2 {
		t.Errorf("sweep of the node removed %d (%v), want b's 2 objects", n, err)
	}
}

// dirExists says whether dir is there.
func dirExists(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}
