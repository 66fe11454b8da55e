package config

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	apply := c.Flags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := apply(); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Executors != 4 || c.MaxBody != 1<<20 ||
		!strings.HasSuffix(c.Database, "flowd-data/flowd.db") || !strings.HasPrefix(c.Database, "sqlite:/") ||
		c.ExternalURL != "http://127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"FLOWD_ADDR": "0.0.0.0:9000", "FLOWD_EXECUTORS": "2", "FLOWD_ADMIN_PASSWORD": "pw",
		"FLOWD_EXTERNAL_URL": "https://ci.example.com/", "FLOWD_METRICS_TOKEN": "metrics-token-0123456789"}
	c, err := parse(t, []string{"--executors", "8", "--metrics-addr", "127.0.0.1:9100"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.Executors != 8 || c.AdminPassword != "pw" || c.ExternalURL != "https://ci.example.com" ||
		c.MetricsToken != "metrics-token-0123456789" || c.MetricsAddr != "127.0.0.1:9100" {
		t.Fatalf("a flag must win over the environment, which wins over defaults: %+v", c)
	}
}

// TestNoExecutors: --executors 0 makes a server that runs no job itself.
func TestNoExecutors(t *testing.T) {
	t.Parallel()
	if c, err := parse(t, []string{"--executors", "0"}, nil); err != nil || c.Executors != 0 {
		t.Fatalf("--executors 0 = %+v, %v", c.Executors, err)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--executors", "-1"}, nil, "--executors"},
		{[]string{"--executors", "1025"}, nil, "--executors"},
		{[]string{"--database", "mysql://x"}, nil, "--database"},
		{[]string{"--external-url", "ftp://x"}, nil, "--external-url"},
		{nil, map[string]string{"FLOWD_EXECUTORS": "many"}, "FLOWD_EXECUTORS"},
		{[]string{"--max-body", "10"}, nil, "--max-body"},
		{[]string{"--max-job-log", "1KiB"}, nil, "--max-job-log"},
		{[]string{"--max-job-log", "lots"}, nil, "max-job-log"},
		{nil, map[string]string{"FLOWD_MAX_JOB_LOG": "64 parsecs"}, "FLOWD_MAX_JOB_LOG"},
		{nil, map[string]string{"FLOWD_METRICS_TOKEN": "short"}, "--metrics-token"},
		{[]string{"--addr", "127.0.0.1:9000", "--metrics-addr", "127.0.0.1:9000"}, nil, "--metrics-addr"},
		{[]string{"--log-retention", "10m"}, nil, "--log-retention"},
		{[]string{"--log-retention", "ninety days"}, nil, "log-retention"},
		{[]string{"--executor", "docker"}, nil, "--executor docker runs jobs without image: in a container of --default-image"},
		{[]string{"--executor", "podman"}, nil, "--executor must be process or docker"},
		{[]string{"--container-pids", "3"}, nil, "--container-pids at least 16"},
		{[]string{"--container-max-memory", "lots"}, nil, "container-max-memory"},
		{[]string{"--default-image", "debian 12"}, nil, "--default-image must be an image reference"},
	}
	for _, c := range cases {
		if _, err := parse(t, c.args, c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one naming %s", c.args, c.env, err, c.want)
		}
	}
}

// TestContainerSettings: the container flags and their FLOWD_ variables reach the config.
func TestContainerSettings(t *testing.T) {
	t.Parallel()
	c, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.JobExecutor != "process" || !c.AllowHostJobs || c.DefaultImage != "" || c.ContainerPids != 4096 {
		t.Errorf("defaults: executor %q, allow host jobs %v, default image %q, pids %d", c.JobExecutor, c.AllowHostJobs, c.DefaultImage, c.ContainerPids)
	}
	c, err = parse(t, []string{"--executor", "docker", "--default-image", "debian:12", "--allow-host-jobs=false", "--container-max-memory", "2GiB"},
		map[string]string{"FLOWD_CONTAINER_MAX_CPUS": "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if c.JobExecutor != "docker" || c.DefaultImage != "debian:12" || c.AllowHostJobs || c.ContainerMaxMemory != 2<<30 || c.ContainerMaxCPUs != 1.5 {
		t.Errorf("settings: %+v", c)
	}
}

func TestSizesAndAges(t *testing.T) {
	t.Parallel()
	c, err := parse(t, []string{"--max-job-log", "1MiB"}, map[string]string{"FLOWD_LOG_RETENTION": "30d"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxJobLog != 1<<20 || time.Duration(c.LogRetention) != 30*24*time.Hour {
		t.Fatalf("--max-job-log 1MiB and FLOWD_LOG_RETENTION=30d: got %v and %v", c.MaxJobLog, c.LogRetention)
	}
	if d := Default(); d.MaxJobLog.String() != "64MiB" || d.LogRetention.String() != "90d" {
		t.Fatalf("defaults print as %v and %v, want 64MiB and 90d", d.MaxJobLog, d.LogRetention)
	}
	if c, err := parse(t, []string{"--log-retention", "0"}, nil); err != nil || c.LogRetention != 0 {
		t.Fatalf("--log-retention 0 (forever): %v, %v", c.LogRetention, err)
	}
	sizes := map[string]int64{"64MiB": 64 << 20, "64mib": 64 << 20, "512k": 512 << 10, "1 GiB": 1 << 30, "1GB": 1e9,
		"100": 100, "100B": 100, "2M": 2 << 20, "3KB": 3000}
	for in, want := range sizes {
		if got, err := ParseSize(in); err != nil || int64(got) != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "64 apples", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	ages := map[string]time.Duration{"90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "0": 0}
	for in, want := range ages {
		if got, err := ParseAge(in); err != nil || time.Duration(got) != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "3 weeks", "1d-1h"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) accepted", in)
		}
	}
}

// TestLabels: --labels (or FLOWD_LABELS) gives the server's slots labels; a bad one is an
// error that names the label.
func TestLabels(t *testing.T) {
	t.Parallel()
	c, err := parse(t, []string{"--labels", "gpu=true, os=linux"}, map[string]string{"FLOWD_LABELS": "x=y"})
	if err != nil || !reflect.DeepEqual(c.Labels, map[string]string{"gpu": "true", "os": "linux"}) {
		t.Errorf("--labels: %v, %v", c.Labels, err)
	}
	if c, err = parse(t, nil, map[string]string{"FLOWD_LABELS": "gpu=true"}); err != nil || !reflect.DeepEqual(c.Labels, map[string]string{"gpu": "true"}) {
		t.Errorf("FLOWD_LABELS: %v, %v", c.Labels, err)
	}
	if c, err = parse(t, nil, nil); err != nil || len(c.Labels) != 0 {
		t.Errorf("no labels: %v, %v", c.Labels, err)
	}
	if _, err = parse(t, []string{"--labels", "gpu"}, nil); err == nil || !strings.Contains(err.Error(), `label "gpu" must be key=value`) {
		t.Errorf("--labels gpu: %v", err)
	}
}
