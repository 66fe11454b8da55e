package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/flowd/flowd/internal/dockertest"
)

// The tests of jobs in containers (issue 12), over the real binary and a real Docker daemon,
// with the tests' own image (dockertest.Image: busybox, no registry here).

// containerNode starts a server whose node name is the test's own, so that what Docker holds of
// it can be listed by its io.flowd.node label.
func containerNode(t *testing.T, dialect string, args ...string) (*server, string, *client.Client) {
	t.Helper()
	docker := dockertest.Client(t)
	node := fmt.Sprintf("ctr-%d", rand.Uint64())
	data, dsn := newDatabase(t, dialect)
	srv := startServer(t, data, dsn, append([]string{"--node-name", node}, args...)...)
	return srv, node, docker
}

// dockerObjects lists the containers (with their state), networks and volumes labelled for node.
func dockerObjects(t *testing.T, c *client.Client, node string) []string {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "io.flowd.node="+node)
	var out []string
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range cs.Items {
		out = append(out, fmt.Sprintf("container %s %s %s", x.Labels["io.flowd.role"], x.Names[0], x.State))
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ns.Items {
		out = append(out, "network "+x.Name)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range vs.Items {
		out = append(out, "volume "+x.Name)
	}
	slices.Sort(out)
	return out
}

// waitNoObjects waits until Docker holds nothing of node.
func waitNoObjects(t *testing.T, c *client.Client, node string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := dockerObjects(t, c, node)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in Docker of node %s: %v", node, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRun starts a manual run of pipeline name and returns its id.
func (s *server) startRun(token, name string) int64 {
	s.t.Helper()
	var r struct{ Run runView }
	if code := s.api(token, "POST", "/api/v1/pipelines/"+name+"/runs", map[string]any{}, &r); code != 201 {
		s.t.Fatalf("start a run of %s: %d", name, code)
	}
	return r.Run.ID
}

// createAndRun creates a pipeline from yaml, starts a run of it and waits for its end.
func (s *server) createAndRun(token, yaml string) (gitRunView, string) {
	s.t.Helper()
	s.createPipeline(token, yaml)
	name := strings.TrimPrefix(strings.SplitN(yaml, "\n", 2)[0], "name: ")
	return s.endedRun(token, s.startRun(token, name))
}

// endedRun waits for run id to end and returns it and its log.
func (s *server) endedRun(token string, id int64) (gitRunView, string) {
	s.t.Helper()
	waitFor(s.t, fmt.Sprintf("run %d to end", id), func() bool {
		st := s.gitRun(token, id).Status
		return st == "success" || st == "failed" || st == "canceled"
	})
	return s.gitRun(token, id), s.log(token, id)
}

// TestContainerJobs is the seed's variable webhook with the job in a container: `{"abc":"456"}`
// prints 456 from a step; a file of step 1 is there in step 2; a service answers by its name;
// the steps cannot see the server's data folder nor a neighbour job's workspace; the exit code
// of a failing step fails the job; and once the runs ended, no container, network or volume of
// theirs is left, a step's background `sleep 300 &` with them.
func TestContainerJobs(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			srv, node, docker := containerNode(t, dialect)
			admin := srv.token("admin", adminPassword)
			yaml := `name: boxed
variables:
  abc: "123"
image: ` + dockertest.Image + `
stages:
  - name: build
    jobs:
      - name: neighbour
        container: {pull: never}
        steps:
          - name: keep
            run: echo neighbour-secret > secret.txt; for i in $(seq 100); do test -f /tmp/never && break; sleep 0.1; done
      - name: box
        container: {pull: never, user: "1000"}
        services:
          - name: web
            image: ` + dockertest.Image + `
            command: [httpd, -f, -p, "8080", -h, /etc]
        steps:
          - name: hello
            run: echo "abc=$abc"; echo kept > f; sleep 300 &
          - name: look
            run: |
              echo "uid=$(id -u) in $(pwd)"
              cat f
              ls ` + srv.Data + ` 2>&1 || true
              cat ` + filepath.Join(srv.Data, "secret.key") + ` 2>&1 || true
              find / -name secret.txt 2>/dev/null || true
              for i in $(seq 50); do wget -q -O - http://web:8080/group && break; sleep 0.1; done
`
			hook := srv.enableHook(admin, yaml, "boxed", "")
			status, a, _ := post(t, hook, `{"abc":"456"}`)
			if status != 202 || a.Run == nil {
				t.Fatalf("webhook: %d %+v", status, a)
			}
			r, log := srv.endedRun(admin, a.Run.ID)
			t.Logf("log:\n%s", log)
			if r.Status != "success" {
				t.Fatalf("run %s: %s", r.Status, r.Message)
			}
			for _, want := range []string{"abc=456\n", "uid=1000 in /workspace\n", "kept\n", "No such file or directory", "root:x:0:\n", "⬢ container " + dockertest.Image + " ready in "} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks %q", want)
				}
			}
			if strings.Contains(log, "neighbour-secret") || strings.Contains(log, "/secret.txt") {
				t.Error("a step reached the neighbour job's workspace")
			}
			if strings.Contains(log, "flowd.db") {
				t.Error("a step listed the server's data folder")
			}
			waitNoObjects(t, docker, node)

			// A failing step's exit code fails the job, and the run says which step.
			failing := `name: failing
image: ` + dockertest.Image + `
stages:
  - name: s
    jobs:
      - name: j
        container: {pull: never}
        steps:
          - name: breaks
            run: echo about to fail; exit 3
          - name: never
            run: echo never
`
			r, log = srv.createAndRun(admin, failing)
			if r.Status != "failed" || !strings.Contains(log, "✖ breaks: exit code 3") || !strings.Contains(log, "○ never: skipped") {
				t.Errorf("failing run: %s %q\n%s", r.Status, r.Message, log)
			}
			waitNoObjects(t, docker, node)
		})
	}
}

// TestContainerStop: cancel, and the job's timeout, end the container's processes within
// seconds (the executor's own test holds it to 2 s) and the run says why.
func TestContainerStop(t *testing.T) {
	t.Parallel()
	srv, node, docker := containerNode(t, "sqlite")
	admin := srv.token("admin", adminPassword)
	for _, tc := range []struct{ name, timeout, want, message string }{
		{"canceled", "", "canceled", "canceled by request"},
		{"timed", "timeout: 3s", "failed", "job timed out after 3s"},
	} {
		yaml := `name: ` + tc.name + `
stages:
  - name: s
    jobs:
      - name: j
        image: ` + dockertest.Image + `
        container: {pull: never}
        ` + tc.timeout + `
        steps:
          - name: wait
            run: echo started; (trap '' TERM; sleep 600) & sleep 600
`
		srv.createPipeline(admin, yaml)
		id := srv.startRun(admin, tc.name)
		waitFor(t, "the step to start", func() bool { return strings.Contains(srv.log(admin, id), "started\n") })
		begin := time.Now()
		if tc.timeout == "" {
			if code := srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), nil, nil); code != 202 && code != 200 {
				t.Fatalf("cancel: %d", code)
			}
		}
		// The step's processes are gone once the job's container no longer runs.
		waitFor(t, "the job's container to stop", func() bool {
			for _, o := range dockerObjects(t, docker, node) {
				if strings.HasPrefix(o, "container job ") && strings.HasSuffix(o, " running") {
					return false
				}
			}
			return true
		})
		t.Logf("%s: the container stopped %v after the request", tc.name, time.Since(begin))
		if tc.timeout == "" && time.Since(begin) > 5*time.Second {
			t.Errorf("the canceled job's container ran %v after the cancel", time.Since(begin))
		}
		r, log := srv.endedRun(admin, id)
		if r.Status != tc.want || !strings.Contains(r.Message+"\n"+log, tc.message) {
			t.Errorf("%s: run %s %q, want %s with %q\n%s", tc.name, r.Status, r.Message, tc.want, tc.message, log)
		}
		waitNoObjects(t, docker, node)
	}
}

// TestContainerOOM: a step over the job's memory limit fails the job as OOMKilled, shown on the
// run.
func TestContainerOOM(t *testing.T) {
	t.Parallel()
	srv, node, docker := containerNode(t, "sqlite")
	admin := srv.token("admin", adminPassword)
	yaml := `name: hungry
stages:
  - name: s
    jobs:
      - name: j
        image: ` + dockertest.Image + `
        container: {pull: never, memory: 16Mi}
        steps:
          - name: eat
            run: x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}
`
	r, log := srv.createAndRun(admin, yaml)
	if r.Status != "failed" || !strings.Contains(r.Message, "OOMKilled") || !strings.Contains(log, "OOMKilled") {
		t.Errorf("run %s %q, want failed for OOMKilled\n%s", r.Status, r.Message, log)
	}
	waitNoObjects(t, docker, node)
}

// TestContainerGitCheckout: a push of a Git source starts a run whose container finds the
// pushed commit checked out in /workspace.
func TestContainerGitCheckout(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	srv, node, docker := containerNode(t, "sqlite")
	admin := srv.token("admin", adminPassword)
	hook := srv.enableHook(admin, gitPipeline("app", rp.Bare, "image: "+dockertest.Image+"\n",
		"              echo \"README=$(cat README) HEAD=$(cat .git/HEAD) SHA=$FLOWD_COMMIT_SHA\"\n"), "app", "s3cret")
	status, a := send(t, hook, "github", gitPush{Ref: "refs/heads/main", Before: rp.MainPrev, After: rp.Main, Repo: rp.Bare}, "s3cret")
	if status != 202 || a.Run == nil {
		t.Fatalf("push: %d %+v", status, a)
	}
	log := srv.waitLog(admin, a.Run.ID)
	if want := "README=two HEAD=" + rp.Main + " SHA=" + rp.Main; !strings.Contains(log, want) {
		t.Errorf("the log lacks %q:\n%s", want, log)
	}
	waitNoObjects(t, docker, node)
}

// TestContainerKilledServer: kill -9 of the server while a job with a service runs in Docker;
// its container, service, network and volume outlive it, and the server started again on the
// same data folder removes them all before it listens.
func TestContainerKilledServer(t *testing.T) {
	t.Parallel()
	docker := dockertest.Client(t)
	node := fmt.Sprintf("ctr-%d", rand.Uint64())
	data, dsn := newDatabase(t, "sqlite")
	args := []string{"--node-name", node}
	srv := startServer(t, data, dsn, args...)
	admin := srv.token("admin", adminPassword)
	yaml := `name: long
image: ` + dockertest.Image + `
stages:
  - name: s
    jobs:
      - name: j
        container: {pull: never}
        services: [{name: side, image: ` + dockertest.Image + `, command: [sleep, "600"]}]
        steps:
          - name: wait
            run: echo started; sleep 600
`
	srv.createPipeline(admin, yaml)
	id := srv.startRun(admin, "long")
	waitFor(t, "the step to start", func() bool { return strings.Contains(srv.log(admin, id), "started\n") })
	srv.crash()
	before := dockerObjects(t, docker, node)
	if len(before) != 4 {
		t.Fatalf("after kill -9: %v, want the job's container, its service, network and volume", before)
	}
	t.Logf("left by the killed server: %v", before)
	srv2 := startServer(t, data, dsn, args...)
	if left := dockerObjects(t, docker, node); len(left) > 0 {
		t.Errorf("after the restart: %v, want nothing of the node", left)
	}
	r, _ := srv2.endedRun(admin, id)
	if r.Status != "failed" {
		t.Errorf("the killed server's run is %s %q, want failed", r.Status, r.Message)
	}
}

// TestContainerServerSettings: --executor docker --default-image runs a job without image in a
// container; --allow-host-jobs=false refuses, when it is saved, a job that would run on the
// host, at its line and column; a server without a reachable Docker fails a job with an image
// in one sentence saying what to do, on the run and in its log.
func TestContainerServerSettings(t *testing.T) {
	t.Parallel()
	hostJob := `name: plain
stages:
  - name: s
    jobs:
      - name: where
        steps:
          - run: test -f /.dockerenv && echo "in a container"
`
	t.Run("default image", func(t *testing.T) {
		t.Parallel()
		srv, node, docker := containerNode(t, "sqlite", "--executor", "docker", "--default-image", dockertest.Image)
		admin := srv.token("admin", adminPassword)
		r, log := srv.createAndRun(admin, hostJob)
		if r.Status != "success" || !strings.Contains(log, "in a container\n") {
			t.Errorf("run %s %q, want success in a container\n%s", r.Status, r.Message, log)
		}
		waitNoObjects(t, docker, node)
	})
	t.Run("host jobs refused", func(t *testing.T) {
		t.Parallel()
		srv, _, _ := containerNode(t, "sqlite", "--allow-host-jobs=false")
		admin := srv.token("admin", adminPassword)
		var e struct {
			Error struct {
				Code     string `json:"code"`
				Problems []struct {
					Line, Column int
					Message      string
				} `json:"problems"`
			} `json:"error"`
		}
		code := srv.api(admin, "POST", "/api/v1/pipelines", hostJob, &e)
		if p := e.Error.Problems; code != 422 || len(p) != 1 || p[0].Line != 5 || p[0].Column != 15 ||
			!strings.HasPrefix(p[0].Message, `this server runs jobs only in containers (--allow-host-jobs=false): give job "where" an image:`) {
			t.Errorf("save of a host job: %d %+v", code, e)
		}
		_, errOut, exit := srv.cliIn(admin, hostJob, "pipeline", "apply", "-f", "-")
		if exit == 0 || !strings.Contains(errOut, "--allow-host-jobs=false") {
			t.Errorf("flowd pipeline apply of a host job: exit %d\n%s", exit, errOut)
		}
	})
	t.Run("no trust needed", func(t *testing.T) {
		t.Parallel()
		// Steps of host jobs run as the server's own user here: only trusted pipelines may.
		srv, node, docker := containerNode(t, "sqlite", "--step-user", "none")
		admin := srv.token("admin", adminPassword)
		bob := srv.user(admin, "bob")
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if code := srv.api(bob, "POST", "/api/v1/pipelines", hostJob, &e); code != 403 || e.Error.Code != "untrusted_pipeline" {
			t.Errorf("bob saves a host job: %d %+v, want 403 untrusted_pipeline", code, e)
		}
		boxed := strings.Replace(hostJob, "name: plain", "name: boxed\nimage: "+dockertest.Image, 1)
		r, log := srv.createAndRun(bob, boxed) // no trust needed to save or run it
		if r.Status != "success" || !strings.Contains(log, "in a container\n") {
			t.Errorf("bob's run %s %q\n%s", r.Status, r.Message, log)
		}
		waitNoObjects(t, docker, node)
	})
	t.Run("docker unreachable", func(t *testing.T) {
		t.Parallel()
		dockertest.Client(t) // the image is the tests'; only this server is cut off from the daemon
		data, dsn := newDatabase(t, "sqlite")
		srv := startServerEnv(t, data, dsn, []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"})
		admin := srv.token("admin", adminPassword)
		boxed := strings.Replace(hostJob, "      - name: where\n", "      - name: where\n        image: "+dockertest.Image+"\n", 1)
		r, log := srv.createAndRun(admin, boxed)
		want := "cannot reach Docker at unix:///nonexistent/docker.sock"
		if r.Status != "failed" || !strings.Contains(r.Message, want) || !strings.Contains(log, want) || !strings.Contains(r.Message, "start the Docker daemon") {
			t.Errorf("run %s %q, want failed with %q\n%s", r.Status, r.Message, want, log)
		}
	})
}

// TestContainerRescued: a server stopped (SIGSTOP) past its lease while its job runs in a
// container; the other server of the cluster (same Docker daemon) rescues the job and removes
// the lost attempt's container and volume at once, without waiting for the stopped server. When
// it continues, its job's step ends and its late end is refused.
func TestContainerRescued(t *testing.T) {
	t.Parallel()
	docker := dockertest.Client(t)
	suffix := fmt.Sprintf("-%d", rand.Uint64())
	args := []string{"--lease-ttl", shortLease, "--executors", "1"}
	c := startCluster(t, nodeSpec{Name: "box-a" + suffix, Args: args}, nodeSpec{Name: "box-b" + suffix, Args: args})
	c.Nodes[0].createPipeline(c.Admin, `name: boxed
image: `+dockertest.Image+`
stages:
  - name: s
    jobs:
      - name: j
        container: {pull: never}
        steps:
          - name: wait
            run: echo started; sleep 600
`)
	id, err := startRun(c.Nodes[0].URL, c.Admin, "boxed")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the step to start", func() bool { return strings.Contains(c.Nodes[0].log(c.Admin, id), "started\n") })
	stale, live := c.runnerOf(id)
	if got := dockerObjects(t, docker, stale.Name); len(got) != 2 {
		t.Fatalf("objects of %s while its job runs: %v, want its container and volume", stale.Name, got)
	}
	stale.pause()
	took := waitWithin(t, "the lost attempt's container and volume to be removed", rescueLimit+10*time.Second, func() bool {
		return len(dockerObjects(t, docker, stale.Name)) == 0
	})
	t.Logf("%s stopped: its attempt's objects removed by %s after %v", stale.Name, live.Name, took.Round(10*time.Millisecond))
	if r := live.runAttempts(c.Admin, id); len(r.job().Attempts) == 0 || r.job().Attempts[0].State != "lost" {
		t.Errorf("after the rescue: %s, want attempt 1 lost", r)
	}
	quiet := len(stale.out.String())
	stale.resume()
	waitWithin(t, stale.Name+" to try to end the job", 30*time.Second, func() bool {
		return strings.Contains(stale.out.String()[quiet:], "the job's end was refused")
	})
	if left := dockerObjects(t, docker, stale.Name); len(left) > 0 {
		t.Errorf("objects of %s after it continued: %v", stale.Name, left)
	}
}
