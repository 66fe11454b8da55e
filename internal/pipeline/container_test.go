package pipeline

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/run"
)

// containerJobs is a pipeline with an image of its own and three jobs: one taking the
// pipeline's image, one with its own image, container options and services, and one with its
// own image only.
const containerJobs = `name: x
image: golang:1.26
stages:
  - name: s
    jobs:
      - name: inherit
        steps: [{run: go test ./...}]
      - name: own
        image: registry.example.com:5000/team/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        container:
          user: "1000:1000"
          network: bridge
          cpus: 1.5
          memory: 512Mi
          pull: never
        services:
          - postgres:16
          - registry.example.com/team/redis_cache:7
          - name: db2
            image: mysql@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
            env: {MYSQL_ROOT_PASSWORD: secret, N: 1}
            command: mysqld --max-connections=5 'a b' "c\"d"
          - name: cmd
            image: busybox
            command: [sleep, "300"]
        steps: [{run: make}]
      - name: plain
        image: alpine
        container: {user: 0, cpus: 2, memory: 1073741824}
        steps: [{run: make}]
`

func TestParseContainers(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(containerJobs))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if p.Image != "golang:1.26" {
		t.Errorf("pipeline image = %q", p.Image)
	}
	jobs := p.Stages[0].Jobs
	want := []*run.Container{
		{Image: "golang:1.26"},
		{
			Image: "registry.example.com:5000/team/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			User:  "1000:1000", Network: run.NetworkBridge, CPUs: 1.5, Memory: 512 << 20, Pull: run.PullNever,
			Services: []run.Service{
				{Name: "postgres", Image: "postgres:16"},
				{Name: "redis-cache", Image: "registry.example.com/team/redis_cache:7"},
				{Name: "db2", Image: "mysql@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
					Env: map[string]string{"MYSQL_ROOT_PASSWORD": "secret", "N": "1"}, Command: []string{"mysqld", "--max-connections=5", "a b", `c"d`}},
				{Name: "cmd", Image: "busybox", Command: []string{"sleep", "300"}},
			},
		},
		{Image: "alpine", User: "0", CPUs: 2, Memory: 1 << 30},
	}
	for i, j := range jobs {
		if !reflect.DeepEqual(j.Container, want[i]) {
			t.Errorf("job %s: container = %#v, want %#v", j.Name, j.Container, want[i])
		}
	}
	// Positions: the job's name, its image (the pipeline's for inherit), cpus and memory.
	wantPos := []JobPos{
		{Job: Position{6, 15}, Image: Position{2, 8}},
		{Job: Position{8, 15}, Image: Position{9, 16}, CPUs: Position{13, 17}, Memory: Position{14, 19}},
		{Job: Position{27, 15}, Image: Position{28, 16}, CPUs: Position{29, 36}, Memory: Position{29, 47}},
	}
	for i, j := range jobs {
		if j.Pos != wantPos[i] {
			t.Errorf("job %s: pos = %+v, want %+v", j.Name, j.Pos, wantPos[i])
		}
	}
	// clone copies the containers, not their pointers.
	c := p.clone()
	cj := c.Stages[0].Jobs[1].Container
	if cj == jobs[1].Container || !reflect.DeepEqual(cj, jobs[1].Container) {
		t.Fatalf("clone shares or changes the container")
	}
	cj.Services[2].Env["N"] = "2"
	cj.Services[3].Command[0] = "x"
	if jobs[1].Container.Services[2].Env["N"] != "1" || jobs[1].Container.Services[3].Command[0] != "sleep" {
		t.Errorf("a change to the clone's services reached the original")
	}
}

func TestParseNoImage(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if j := p.Stages[0].Jobs[0]; j.Container != nil || j.Pos.Image != (Position{}) {
		t.Errorf("job without image: container %#v, image at %+v", j.Container, j.Pos.Image)
	}
	// A null image counts as absent, at either level.
	p, err = Parse([]byte("image: ~\n" + strings.Replace(minimal, "        steps:", "        image:\n        steps:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if j := p.Stages[0].Jobs[0]; j.Container != nil || p.Image != "" {
		t.Errorf("null image: container %#v, pipeline image %q", j.Container, p.Image)
	}
}

func TestParseContainerInvalid(t *testing.T) {
	t.Parallel()
	job := func(extra string) string {
		return "name: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps: [{run: a}]\n" + extra
	}
	const at = "stages[0].jobs[0]."
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown container key", job("        image: a\n        container: {memroy: 1Gi}\n"), []string{`8:21: ` + at + `container.memroy: unknown key (did you mean "memory"?)`}},
		{"container without image", job("        container: {user: '1'}\n"), []string{"7:9: " + at + "container: needs an image: give the job an image: (or the pipeline one), such as image: golang:1.26"}},
		{"services without image", job("        services: [postgres]\n"), []string{"7:9: " + at + "services: needs an image: give the job an image: (or the pipeline one), such as image: golang:1.26"}},
		{"services with network none", job("        image: a\n        container: {network: none}\n        services: [postgres]\n"), []string{"9:9: " + at + "services: services need a network: the job cannot reach them with network: none (use network: bridge, or no services)"}},
		{"user name", job("        image: a\n        container: {user: runner}\n"), []string{`8:27: ` + at + `container.user: "runner" is not a user id: use a number such as "1000" or "1000:1000" (uid or uid:gid); a name would need the image's /etc/passwd`}},
		{"user name with group", job("        image: a\n        container: {user: '1000:staff'}\n"), []string{`8:27: ` + at + `container.user: "1000:staff" is not a user id: use a number such as "1000" or "1000:1000" (uid or uid:gid); a name would need the image's /etc/passwd`}},
		{"negative user", job("        image: a\n        container: {user: -1}\n"), []string{`8:27: ` + at + `container.user: "-1" is not a user id: use a number such as "1000" or "1000:1000" (uid or uid:gid); a name would need the image's /etc/passwd`}},
		{"network host", job("        image: a\n        container: {network: host}\n"), []string{"8:30: " + at + "container.network: network host is not allowed: a job may not share the server's network; use bridge (the default) or none"}},
		{"network unknown", job("        image: a\n        container: {network: overlay}\n"), []string{`8:30: ` + at + `container.network: unknown network "overlay": use bridge (the default: the job reaches the network and its services) or none (no network at all)`}},
		{"cpus zero", job("        image: a\n        container: {cpus: 0}\n"), []string{"8:27: " + at + "container.cpus: must be at least 0.01 (a hundredth of a CPU), got 0"}},
		{"cpus negative", job("        image: a\n        container: {cpus: -1}\n"), []string{"8:27: " + at + "container.cpus: must be at least 0.01 (a hundredth of a CPU), got -1"}},
		{"cpus too many", job("        image: a\n        container: {cpus: 1025}\n"), []string{"8:27: " + at + "container.cpus: must be at most 1024, got 1025"}},
		{"cpus text", job("        image: a\n        container: {cpus: lots}\n"), []string{`8:27: ` + at + `container.cpus: must be a number of CPUs such as 1 or 1.5, got "lots"`}},
		{"cpus nan", job("        image: a\n        container: {cpus: .nan}\n"), []string{`8:27: ` + at + `container.cpus: must be a number of CPUs such as 1 or 1.5, got ".nan"`}},
		{"cpus list", job("        image: a\n        container: {cpus: [1]}\n"), []string{"8:27: " + at + "container.cpus: must be a string, not a sequence"}},
		{"memory too small", job("        image: a\n        container: {memory: 4Mi}\n"), []string{"8:29: " + at + "container.memory: must be at least 6Mi (Docker's minimum for a container), got 4Mi"}},
		{"memory docker unit", job("        image: a\n        container: {memory: 512m}\n"), []string{`8:29: ` + at + `container.memory: unknown unit "m" in "512m": write Mi or Gi for 1024-based sizes (Docker's m and g), M or G for 1000-based ones`}},
		{"memory MB", job("        image: a\n        container: {memory: 512MB}\n"), []string{`8:29: ` + at + `container.memory: unknown unit "MB" in "512MB": write Mi or Gi for 1024-based sizes (Docker's m and g), M or G for 1000-based ones`}},
		{"memory text", job("        image: a\n        container: {memory: much}\n"), []string{`8:29: ` + at + `container.memory: invalid size "much": use a number of bytes, or a number and a unit: k (1000), Ki (1024), M, Mi, G, Gi, T or Ti, such as 512Mi or 2Gi`}},
		{"pull unknown", job("        image: a\n        container: {pull: sometimes}\n"), []string{`8:27: ` + at + `container.pull: unknown pull policy "sometimes": use if-not-present (the default), never or always`}},
		{"container not a mapping", job("        image: a\n        container: big\n"), []string{"8:20: " + at + "container: must be a mapping, not a value"}},
		{"empty image", job("        image: ''\n"), []string{"7:16: " + at + "image: must not be empty: give an image such as golang:1.26"}},
		{"uppercase image", job("        image: Golang:1.26\n"), []string{`7:16: ` + at + `image: "Golang:1.26" is not an image: the repository name must be lowercase (golang)`}},
		{"uppercase path after registry", job("        image: ghcr.io/Acme/App\n"), []string{`7:16: ` + at + `image: "ghcr.io/Acme/App" is not an image: the repository name must be lowercase (acme/app)`}},
		{"image with spaces", job("        image: golang 1.26\n"), []string{`7:16: ` + at + `image: "golang 1.26" is not an image: an image reference has no spaces; use NAME[:TAG][@sha256:DIGEST], such as golang:1.26 or registry.example.com/team/app:v1`}},
		{"image with a variable", job("        image: golang:$GO\n"), []string{`7:16: ` + at + `image: "golang:$GO" is not an image: variables are not expanded in image names; use NAME[:TAG][@sha256:DIGEST], such as golang:1.26 or registry.example.com/team/app:v1`}},
		{"bad tag", job("        image: golang:-x\n"), []string{`7:16: ` + at + `image: tag "-x" of "golang:-x" is not valid: use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'`}},
		{"bad digest", job("        image: golang@sha256:abc\n"), []string{`7:16: ` + at + `image: digest "sha256:abc" of "golang@sha256:abc" is not valid: use sha256: and 64 lowercase hex digits`}},
		{"bad registry", job("        image: my_reg.example.com/app\n"), []string{`7:16: ` + at + `image: registry "my_reg.example.com" of "my_reg.example.com/app" is not a host name (with an optional :port)`}},
		{"bad path", job("        image: a//b\n"), []string{`7:16: ` + at + `image: "a//b" is not an image: use NAME[:TAG][@sha256:DIGEST], such as golang:1.26 or registry.example.com/team/app:v1`}},
		{"bad pipeline image with container", "image: 'A B'\n" + job("        container: {cpus: 1}\n"), []string{`1:8: image: "A B" is not an image: an image reference has no spaces; use NAME[:TAG][@sha256:DIGEST], such as golang:1.26 or registry.example.com/team/app:v1`}},
		{"duplicate service names", job("        image: a\n        services:\n          - postgres:16\n          - registry.example.com/x/postgres:15\n          - {name: postgres, image: b}\n"), []string{
			`10:13: ` + at + `services[1]: duplicate service name "postgres" (first at line 9): give each service a name: of its own`,
			`11:20: ` + at + `services[2].name: duplicate service name "postgres" (first at line 9): give each service a name: of its own`,
		}},
		{"invalid service name", job("        image: a\n        services: [{name: My_DB, image: postgres}, {name: '', image: b}, {name: localhost, image: c}]\n"), []string{
			`8:27: ` + at + `services[0].name: "My_DB" is not a valid service name: use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit (the job reaches the service by this host name)`,
			`8:59: ` + at + `services[1].name: is required`,
			`8:81: ` + at + `services[2].name: localhost cannot name a service: it is the job's own container`,
		}},
		{"service name too long to derive", job("        image: a\n        services: [" + strings.Repeat("a", 64) + "]\n"), []string{
			`8:20: ` + at + `services[0]: cannot make a host name of image "` + strings.Repeat("a", 64) + `": give the service a name:, such as {name: db, image: ` + strings.Repeat("a", 64) + `}`,
		}},
		{"service without image and bad keys", job("        image: a\n        services:\n          - {name: db, env: {1X: y}, comand: x}\n          - [a]\n"), []string{
			`9:13: ` + at + `services[0].image: is required`,
			`9:30: ` + at + `services[0].env.1X: invalid variable name: use letters, digits and '_', not starting with a digit`,
			`9:38: ` + at + `services[0].comand: unknown key (did you mean "command"?)`,
			`10:13: ` + at + `services[1]: must be an image such as postgres:16 or a mapping with name, image, env and command, not a sequence`,
		}},
		{"service bad image and command", job("        image: a\n        services: [{image: 'Pg', command: \"a 'b\"}]\n"), []string{
			`8:28: ` + at + `services[0].image: "Pg" is not an image: the repository name must be lowercase (pg)`,
			`8:43: ` + at + `services[0].command: the ' quote is never closed: write the command as a list, such as [postgres, -c, fsync=off]`,
		}},
		{"services not a list", job("        image: a\n        services: {db: postgres}\n"), []string{"8:19: " + at + "services: must be a sequence, not a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.src))
			if p != nil {
				t.Fatalf("Parse returned a pipeline with an error")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	valid := []string{
		"a", "busybox", "golang:1.26", "library/golang:1.26-alpine", "flowd-test/busybox:1",
		"registry.example.com/team/app", "localhost:5000/app:v1.2.3", "localhost/app", "Registry.Example.com/app",
		"[::1]:5000/app", "a__b/c.d-e", "postgres@sha256:" + strings.Repeat("a", 64), "x:TAG_1.0",
		"alpine:3@sha512:" + strings.Repeat("0", 128),
	}
	for _, ref := range valid {
		if msg := checkImage(ref); msg != "" {
			t.Errorf("checkImage(%q) = %q, want valid", ref, msg)
		}
	}
	invalid := []string{
		"", " ", "a b", "A", "a:", "a:.x", "a@", "a@sha256:" + strings.Repeat("A", 64), "a@md5:00", "-a", "a-", "a/", "/a",
		"a..b", "http://a/b", "a:b:c", "${IMAGE}", "a/b:" + strings.Repeat("t", 129), strings.Repeat("a", 256),
	}
	for _, ref := range invalid {
		if msg := checkImage(ref); msg == "" || CheckImage(ref) == nil {
			t.Errorf("checkImage(%q) accepted it", ref)
		}
	}
	if err := CheckImage("debian:12"); err != nil {
		t.Errorf("CheckImage(debian:12) = %v", err)
	}
	if err := CheckImage("Debian"); err == nil || err.Error() != `"Debian" is not an image: the repository name must be lowercase (debian)` {
		t.Errorf("CheckImage(Debian) = %v", err)
	}
}

func TestServiceName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"postgres:16":                                           "postgres",
		"registry.example.com/team/postgres:16":                 "postgres",
		"localhost:5000/redis":                                  "redis",
		"bitnami/redis_cache@sha256:" + strings.Repeat("a", 64): "redis-cache",
		"x/my.db__x":                                            "my-db--x",
	}
	for image, want := range tests {
		if got := serviceName(image); got != want {
			t.Errorf("serviceName(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"":                        nil,
		"  a  b\tc ":              {"a", "b", "c"},
		`postgres -c 'fsync=off'`: {"postgres", "-c", "fsync=off"},
		`a "b c" 'd "e"'`:         {"a", "b c", `d "e"`},
		`"\"\$\x" \ y ''`:         {`"$\x`, " y", ""},
		`a\'b`:                    {"a'b"},
	}
	for in, want := range tests {
		got, err := splitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`"a`, `'a`, `a\`} {
		if _, err := splitWords(in); err == nil {
			t.Errorf("splitWords(%q) accepted it", in)
		}
	}
}

func TestParseMemory(t *testing.T) {
	t.Parallel()
	valid := map[string]int64{
		"0": 0, "6291456": 6 << 20, "512Mi": 512 << 20, "1.5Gi": 3 << 29, "2G": 2e9, "100k": 1e5, "100K": 1e5,
		"64Ki": 64 << 10, "1Ti": 1 << 40, "3T": 3e12, " 7M ": 7e6, ".5Gi": 1 << 29,
	}
	for in, want := range valid {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Mi", "-1", "1..2", "1.2.3Mi", "512m", "1g", "1GB", "1 Gi", "1e9", "1Pi", "9999999999Ti"} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", in, got)
		}
	}
	formats := map[int64]string{
		0: "0", 1: "1", 1023: "1023", 1024: "1Ki", 512 << 20: "512Mi", 4 << 30: "4Gi", 3 << 29: "1536Mi",
		2e9: "2G", 5e8: "500M", 1500: "1500", 2 << 40: "2Ti",
	}
	for in, want := range formats {
		if got := FormatMemory(in); got != want {
			t.Errorf("FormatMemory(%d) = %q, want %q", in, got, want)
		}
		if back, err := ParseMemory(FormatMemory(in)); err != nil || back != in {
			t.Errorf("ParseMemory(FormatMemory(%d)) = %d, %v", in, back, err)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	src := `name: x
stages:
  - name: s
    jobs:
      - name: host
        steps: [{run: a}]
      - name: big
        image: a
        container: {cpus: 8, memory: 4Gi}
        steps: [{run: a}]
      - name: fits
        image: a
        container: {cpus: 2, memory: 2Gi}
        steps: [{run: a}]
`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pol  Policy
		want []string
	}{
		{"zero policy allows everything", Policy{}, nil},
		{"host jobs allowed", Policy{MaxCPUs: 8, MaxMemory: 4 << 30}, nil},
		{"host jobs refused", Policy{RequireImage: true}, []string{
			`5:15: this server runs jobs only in containers (--allow-host-jobs=false): give job "host" an image: (or the pipeline one), such as image: golang:1.26`,
		}},
		{"a default image runs host jobs", Policy{RequireImage: true, DefaultImage: "debian:12"}, nil},
		{"over the maxima", Policy{MaxCPUs: 2, MaxMemory: 2 << 30}, []string{
			`9:27: job "big": cpus 8 is over this server's maximum of 2 (--container-max-cpus)`,
			`9:38: job "big": memory 4Gi is over this server's maximum of 2Gi (--container-max-memory)`,
		}},
		{"fractional maximum", Policy{MaxCPUs: 1.5}, []string{
			`9:27: job "big": cpus 8 is over this server's maximum of 1.5 (--container-max-cpus)`,
			`13:27: job "fits": cpus 2 is over this server's maximum of 1.5 (--container-max-cpus)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.pol.Check(p)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// The pipeline's image makes every job a container job.
	withImage, err := Parse([]byte("image: a\n" + src))
	if err != nil {
		t.Fatal(err)
	}
	if err := (Policy{RequireImage: true}).Check(withImage); err != nil {
		t.Errorf("Check with a pipeline image = %v", err)
	}
}

// TestParseDesignContainerExample: the example of docs/DESIGN.md's "Jobs in containers (YAML)"
// parses (with a name) to what the text around it says.
func TestParseDesignContainerExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### Jobs in containers (YAML)\n```yaml\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal(`docs/DESIGN.md has no "Jobs in containers (YAML)" example`)
	}
	p, err := Parse([]byte("name: x\n" + block))
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	jobs := p.Stages[0].Jobs
	if jobs[0].Container == nil || jobs[0].Container.Image != "golang:1.26" {
		t.Errorf("unit's container = %+v, want the pipeline's image", jobs[0].Container)
	}
	c := jobs[1].Container
	if c == nil || c.Memory != 512<<20 || c.CPUs != 1.5 || len(c.Services) != 2 || c.Services[0].Name != "postgres" || c.Services[1].Name != "cache" ||
		!reflect.DeepEqual(c.Services[1].Command, []string{"redis-server", "--port", "6380"}) || c.Services[1].Env["REDIS_ARGS"] != "--save ''" {
		t.Errorf("integration's container = %+v", c)
	}
}
