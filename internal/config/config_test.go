package config

import (
	"flag"
	"io"
	"strings"
	"testing"
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
		"FLOWD_EXTERNAL_URL": "https://ci.example.com/"}
	c, err := parse(t, []string{"--executors", "8"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.Executors != 8 || c.AdminPassword != "pw" || c.ExternalURL != "https://ci.example.com" {
		t.Fatalf("a flag must win over the environment, which wins over defaults: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--executors", "0"}, nil, "--executors"},
		{[]string{"--database", "mysql://x"}, nil, "--database"},
		{[]string{"--external-url", "ftp://x"}, nil, "--external-url"},
		{nil, map[string]string{"FLOWD_EXECUTORS": "many"}, "FLOWD_EXECUTORS"},
		{[]string{"--max-body", "10"}, nil, "--max-body"},
	}
	for _, c := range cases {
		if _, err := parse(t, c.args, c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one naming %s", c.args, c.env, err, c.want)
		}
	}
}
