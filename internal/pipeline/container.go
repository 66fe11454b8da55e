package pipeline

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/run"
)

// MaxCPUs is the most CPUs a job's container may ask for (container: {cpus}).
const MaxCPUs = 1024

// MinCPUs is the least: Docker's granularity is a hundredth of a CPU.
const MinCPUs = 0.01

// MinMemory is the least memory a job's container may ask for: Docker's own minimum for a
// container's memory limit (6 MiB; dockerd refuses less).
const MinMemory = 6 << 20

var (
	containerKeys = []string{"user", "network", "cpus", "memory", "pull"}
	serviceKeys   = []string{"name", "image", "env", "command"}
)

// jobContainer is what a job's image:, container: and services: fields say, with where they
// are, while the job is walked.
type jobContainer struct {
	image              *field // the job's image:, nil when absent
	container, service *field // container: and services:, nil when absent
}

// containerOf builds a job's run.Container from its fields and the pipeline's image (ps.image).
// It returns nil when the job has no image (its own or the pipeline's) or an image that is not
// valid; container: or services: without any image is a problem.
func (ps *parser) containerOf(jc jobContainer, pos *JobPos) *run.Container {
	image, imageOK, given := ps.image, ps.imageOK, ps.imageGiven
	pos.Image = ps.imagePos
	if jc.image != nil {
		given = true
		image, imageOK = ps.imageRef(*jc.image)
		pos.Image = posOf(ps.valueOrKey(*jc.image))
	}
	if !given {
		for _, f := range []*field{jc.container, jc.service} {
			if f != nil {
				ps.addf(f.key, f.path, "needs an image: give the job an image: (or the pipeline one), such as image: golang:1.26")
			}
		}
		return nil
	}
	c := &run.Container{Image: image}
	if jc.container != nil {
		ps.containerOptions(*jc.container, c, pos)
	}
	if jc.service != nil {
		c.Services = ps.services(*jc.service)
		if len(c.Services) > 0 && c.Network == run.NetworkNone {
			ps.addf(jc.service.key, jc.service.path, "services need a network: the job cannot reach them with network: none (use network: bridge, or no services)")
		}
	}
	if !imageOK {
		return nil
	}
	return c
}

// imageRef reads the image reference of f; ok is false (and a problem recorded) when it is not
// one.
func (ps *parser) imageRef(f field) (string, bool) {
	s, ok := ps.str(f.val, f.path)
	if !ok {
		return "", false
	}
	if msg := checkImage(s); msg != "" {
		ps.addf(ps.valueOrKey(f), f.path, "%s", msg)
		return s, false
	}
	return s, true
}

// containerOptions reads a job's container: mapping into c.
func (ps *parser) containerOptions(f field, c *run.Container, pos *JobPos) {
	for _, g := range ps.mapping(f.val, f.path, containerKeys) {
		n := ps.node(g.val)
		if isNull(n) {
			continue // null counts as absent
		}
		s, ok := ps.str(n, g.path)
		if !ok {
			continue
		}
		s = strings.TrimSpace(s)
		switch g.name {
		case "user":
			if !validUser(s) {
				ps.addf(n, g.path, "%q is not a user id: use a number such as \"1000\" or \"1000:1000\" (uid or uid:gid); a name would need the image's /etc/passwd", s)
				continue
			}
			c.User = s
		case "network":
			switch s {
			case run.NetworkBridge, run.NetworkNone:
				c.Network = s
			case "host":
				ps.addf(n, g.path, "network host is not allowed: a job may not share the server's network; use bridge (the default) or none")
			default:
				ps.addf(n, g.path, "unknown network %q: use bridge (the default: the job reaches the network and its services) or none (no network at all)", s)
			}
		case "cpus":
			v, err := strconv.ParseFloat(s, 64)
			switch {
			case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
				ps.addf(n, g.path, "must be a number of CPUs such as 1 or 1.5, got %s", describe(n))
			case v < MinCPUs:
				ps.addf(n, g.path, "must be at least %g (a hundredth of a CPU), got %s", MinCPUs, s)
			case v > MaxCPUs:
				ps.addf(n, g.path, "must be at most %d, got %s", MaxCPUs, s)
			default:
				c.CPUs = v
				pos.CPUs = posOf(n)
			}
		case "memory":
			v, err := ParseMemory(s)
			switch {
			case err != nil:
				ps.addf(n, g.path, "%v", err)
			case v < MinMemory:
				ps.addf(n, g.path, "must be at least 6Mi (Docker's minimum for a container), got %s", s)
			default:
				c.Memory = v
				pos.Memory = posOf(n)
			}
		case "pull":
			switch s {
			case run.PullIfNotPresent, run.PullNever, run.PullAlways:
				c.Pull = s
			default:
				ps.addf(n, g.path, "unknown pull policy %q: use if-not-present (the default), never or always", s)
			}
		}
	}
}

// validUser reports whether s is a uid or uid:gid, each a 32-bit number.
func validUser(s string) bool {
	uid, gid, hasGID := strings.Cut(s, ":")
	if _, err := strconv.ParseUint(uid, 10, 32); err != nil || strings.HasPrefix(uid, "+") {
		return false
	}
	if hasGID {
		if _, err := strconv.ParseUint(gid, 10, 32); err != nil || strings.HasPrefix(gid, "+") {
			return false
		}
	}
	return true
}

// services reads a job's services: a sequence whose items are an image reference or a mapping
// {name, image, env, command}.
func (ps *parser) services(f field) []run.Service {
	items, ok := ps.sequence(f.val, f.path)
	if !ok {
		return nil
	}
	var out []run.Service
	seen := map[string]int{} // name → line of first use
	for i, item := range items {
		p := index(f.path, i)
		n := ps.node(item)
		if n == nil {
			return out
		}
		var (
			svc           run.Service
			namePos       = n
			named, nameOK bool
			ok            = true
		)
		switch {
		case n.Kind == yaml.ScalarNode && !isNull(n):
			svc.Image = n.Value
			if msg := checkImage(n.Value); msg != "" {
				ps.addf(n, p, "%s", msg)
				ok = false
			}
		case n.Kind == yaml.MappingNode:
			hasImage := false
			for _, g := range ps.mapping(n, p, serviceKeys) {
				switch g.name {
				case "name":
					named = true
					svc.Name, nameOK = ps.str(g.val, g.path)
					namePos = ps.valueOrKey(g)
				case "image":
					hasImage = true
					svc.Image, ok = ps.imageRef(g)
				case "env":
					for _, e := range ps.mapping(g.val, g.path, nil) {
						if !wellFormedVariableName(e.name) {
							ps.addf(e.key, e.path, "invalid variable name: use letters, digits and '_', not starting with a digit")
							continue
						}
						v, ok := ps.str(e.val, e.path)
						if !ok {
							continue
						}
						if svc.Env == nil {
							svc.Env = map[string]string{}
						}
						svc.Env[e.name] = v
					}
				case "command":
					svc.Command = ps.command(g)
				}
			}
			if !hasImage {
				ps.addf(n, join(p, "image"), "is required")
				ok = false
			}
		default:
			ps.addf(n, p, "must be an image such as postgres:16 or a mapping with name, image, env and command, not %s", kindName(n))
			continue
		}
		switch {
		case named && nameOK:
			ps.serviceName(svc.Name, "", namePos, join(p, "name"), seen)
		case !named && ok:
			svc.Name = serviceName(svc.Image)
			ps.serviceName(svc.Name, svc.Image, namePos, p, seen)
		}
		out = append(out, svc)
	}
	return out
}

// serviceName checks the host name of a service, given with name: or (when image is not "")
// derived from its image, and that no other service of the job has it (seen: name → line).
func (ps *parser) serviceName(name, image string, pos *yaml.Node, p string, seen map[string]int) {
	switch {
	case name == "" && image == "":
		ps.addf(pos, p, "is required")
	case !validHostName(name) && image == "":
		ps.addf(pos, p, "%q is not a valid service name: use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit (the job reaches the service by this host name)", name)
	case !validHostName(name):
		ps.addf(pos, p, "cannot make a host name of image %q: give the service a name:, such as {name: db, image: %s}", image, image)
	case name == "localhost":
		ps.addf(pos, p, "localhost cannot name a service: it is the job's own container")
	default:
		if first, dup := seen[name]; dup {
			ps.addf(pos, p, "duplicate service name %q (first at line %d): give each service a name: of its own", name, first)
		} else {
			seen[name] = pos.Line
		}
	}
}

// command reads a service's command: a sequence of strings, or one string split into words as
// a shell would (quotes and backslashes; no variables, no globs).
func (ps *parser) command(g field) []string {
	n := ps.node(g.val)
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		return ps.strList(n, g.path)
	}
	s, ok := ps.str(n, g.path)
	if !ok {
		return nil
	}
	words, err := splitWords(s)
	if err != nil {
		ps.addf(n, g.path, "%v", err)
		return nil
	}
	return words
}

// splitWords splits s into words at blanks outside quotes, as a POSIX shell does without
// expansions: '…' keeps everything, "…" keeps everything but \" \\ \$ \`, and \ outside
// quotes keeps the next character.
func splitWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && !strings.ContainsRune(`"\$`+"`", r) {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("the %c quote is never closed: write the command as a list, such as [postgres, -c, fsync=off]", quote)
	case escaped:
		return nil, fmt.Errorf("ends in a backslash: write the command as a list, such as [postgres, -c, fsync=off]")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Image references (the grammar of github.com/distribution/reference): [DOMAIN/]PATH[:TAG][@DIGEST].
var (
	domainRE = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
	pathRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// CheckImage returns nil when ref is an image reference as image: takes one, else an error that
// says why not (for a server flag such as --default-image, checked as a definition's are).
func CheckImage(ref string) error {
	if msg := checkImage(ref); msg != "" {
		return errors.New(msg)
	}
	return nil
}

// checkImage returns why ref is not an image reference, or "" when it is one.
func checkImage(ref string) string {
	const use = "use NAME[:TAG][@sha256:DIGEST], such as golang:1.26 or registry.example.com/team/app:v1"
	switch {
	case strings.TrimSpace(ref) == "":
		return "must not be empty: give an image such as golang:1.26"
	case strings.ContainsFunc(ref, unicode.IsSpace):
		return strconv.Quote(ref) + " is not an image: an image reference has no spaces; " + use
	case strings.ContainsAny(ref, "${}"):
		return strconv.Quote(ref) + " is not an image: variables are not expanded in image names; " + use
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !digestRE.MatchString(digest) {
		return "digest " + strconv.Quote(digest) + " of " + strconv.Quote(ref) + " is not valid: use sha256: and 64 lowercase hex digits"
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		tag := name[i+1:]
		name = name[:i]
		if !tagRE.MatchString(tag) {
			return "tag " + strconv.Quote(tag) + " of " + strconv.Quote(ref) + " is not valid: use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
		}
	}
	if len(name) > 255 {
		return strconv.Quote(ref) + " is not an image: its name is longer than 255 characters"
	}
	path := name
	if domain, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(domain, ".:") || domain == "localhost" || strings.ToLower(domain) != domain) {
		if !domainRE.MatchString(domain) {
			return "registry " + strconv.Quote(domain) + " of " + strconv.Quote(ref) + " is not a host name (with an optional :port)"
		}
		path = rest
	}
	for _, comp := range strings.Split(path, "/") {
		switch {
		case pathRE.MatchString(comp):
		case pathRE.MatchString(strings.ToLower(comp)):
			return strconv.Quote(ref) + " is not an image: the repository name must be lowercase (" + strings.ToLower(path) + ")"
		default:
			return strconv.Quote(ref) + " is not an image: " + use
		}
	}
	return ""
}

// serviceName is the host name of a service given by image alone, as GitLab derives it: the
// last part of the image's path without tag and digest, each character that may not be in a
// host name replaced with '-'. registry.example.com/team/postgres:16 gives "postgres". It is ""
// when no host name can be made.
func serviceName(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// validHostName reports whether s is a DNS label in lowercase: 1 to 63 letters, digits and '-',
// starting and ending with a letter or digit.
func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// memoryUnits are the units of ParseMemory, by suffix.
var memoryUnits = map[string]int64{
	"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}

// ParseMemory reads a size in bytes: a number, optionally with a fraction, then an optional
// unit: k or K (1000), M (1000²), G, T, or Ki (1024), Mi (1024²), Gi, Ti, as Kubernetes
// writes them ("512Mi", "1.5Gi", "2G", "1048576"). The result is rounded to whole bytes.
func ParseMemory(s string) (int64, error) {
	const use = "use a number of bytes, or a number and a unit: k (1000), Ki (1024), M, Mi, G, Gi, T or Ti, such as 512Mi or 2Gi"
	s = strings.TrimSpace(s)
	end := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if end < 0 {
		end = len(s)
	}
	num, unit := s[:end], s[end:]
	mult, known := memoryUnits[unit]
	if !known {
		switch strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "b")) {
		case "m", "g", "mi", "gi", "k", "ki", "t", "ti":
			return 0, fmt.Errorf("unknown unit %q in %q: write Mi or Gi for 1024-based sizes (Docker's m and g), M or G for 1000-based ones", unit, s)
		}
		return 0, fmt.Errorf("invalid size %q: %s", s, use)
	}
	if num == "" || strings.Count(num, ".") > 1 || num == "." {
		return 0, fmt.Errorf("invalid size %q: %s", s, use)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %s", s, use)
	}
	b := math.Round(v * float64(mult))
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

// FormatMemory writes a size in bytes as ParseMemory reads it, in the unit it is the fewest
// whole units of (1024-based on a tie): 4294967296 gives "4Gi", 2000000000 gives "2G".
func FormatMemory(b int64) string {
	best, suffix := b, ""
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if b != 0 && b%u.size == 0 && b/u.size < best {
			best, suffix = b/u.size, u.suffix
		}
	}
	return strconv.FormatInt(best, 10) + suffix
}
