package commitstatus

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// knownHosts are the public hosts Resolve recognises by name.
var knownHosts = map[string]string{
	"github.com":        GitHub,
	"gitlab.com":        GitLab,
	"gitea.com":         Gitea,
	"codeberg.org":      Gitea, // Forgejo
	"bitbucket.org":     Bitbucket,
	"codeup.aliyun.com": Codeup,
}

// publicAPIs are the API bases of the public hosts whose API lives on another name.
var publicAPIs = map[string]string{
	"github.com":        "https://api.github.com",
	"bitbucket.org":     "https://api.bitbucket.org/2.0",
	"codeup.aliyun.com": "https://openapi-rdc.aliyuncs.com",
}

// DefaultCodeupAPI is the Yunxiao OpenAPI endpoint of Codeup's central edition.
const DefaultCodeupAPI = "https://openapi-rdc.aliyuncs.com"

// Resolve works out the Target from the pipeline source's URL (https, ssh
// "git@host:owner/repo.git", or ssh://) and the optional YAML keys source.status_host (a
// kind), source.status_api (base URL) and source.status_repo. Left out: the host kind comes
// from the URL's host (github.com, gitlab.com, gitea.com, codeberg.org, bitbucket.org,
// codeup.aliyun.com) or, for Bitbucket Server, its /scm/ path; the API from the kind and the
// URL's host; the repository from the URL's path (without .git; Bitbucket Server without
// /scm/). Errors are sentences for the YAML author naming the key to set. A password in
// repoURL never appears in an error.
func Resolve(repoURL, host, api, repo string) (Target, error) {
	src, srcErr := parseSource(repoURL)
	kind, err := resolveHost(host, src, srcErr, repoURL)
	if err != nil {
		return Target{}, err
	}
	t := Target{Host: kind}
	if t.API, err = resolveAPI(kind, api, src, srcErr); err != nil {
		return Target{}, err
	}
	if t.Repo, err = resolveRepo(kind, repo, src, srcErr); err != nil {
		return Target{}, err
	}
	return t, nil
}

// source is what Resolve reads from the pipeline source's URL.
type source struct {
	shown    string // the URL without its password, for messages
	scheme   string // http or https; "" for SSH
	host     string // lower-case host name, with the port for http(s) ones
	hostname string // lower-case host name without port
	path     string // the path without slashes at the ends or .git
}

// parseSource reads an http(s), ssh:// or scp-like SSH repository URL.
func parseSource(raw string) (source, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return source{}, errors.New("the pipeline has no source URL")
	}
	var s source
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return source{}, fmt.Errorf("cannot read the source URL %q", redact(raw))
		}
		s.shown = u.Redacted()
		switch strings.ToLower(u.Scheme) {
		case "http", "https":
			s.scheme = strings.ToLower(u.Scheme)
			s.host = strings.ToLower(u.Host)
		case "ssh", "git+ssh", "ssh+git", "git":
		default:
			return source{}, fmt.Errorf("cannot read the source URL %q: want https, ssh:// or git@host:owner/repo", s.shown)
		}
		s.hostname = strings.ToLower(u.Hostname())
		s.path = u.Path
	} else {
		// scp-like [user@]host:path
		c := strings.IndexByte(raw, ':')
		if c <= 0 || strings.Contains(raw[:c], "/") {
			return source{}, fmt.Errorf("cannot read the source URL %q: want https, ssh:// or git@host:owner/repo", redact(raw))
		}
		s.shown = raw
		s.hostname = strings.ToLower(raw[:c])
		if at := strings.LastIndexByte(s.hostname, '@'); at >= 0 {
			s.hostname = s.hostname[at+1:]
		}
		s.path = raw[c+1:]
	}
	if s.host == "" {
		s.host = s.hostname
	}
	s.path = strings.TrimSuffix(strings.Trim(s.path, "/"), ".git")
	return s, nil
}

// redact hides what follows "user:" in an unparsable URL's user part.
func redact(raw string) string {
	if at := strings.LastIndexByte(raw, '@'); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			return raw[:i+3] + "xxxxx" + raw[at:]
		}
	}
	return raw
}

// kindsList is how messages list the kinds.
const kindsList = "github, gitlab, gitea, bitbucket, bitbucket_server or codeup"

func resolveHost(host string, src source, srcErr error, repoURL string) (string, error) {
	if host != "" {
		h := strings.ToLower(strings.TrimSpace(host))
		if h == "gogs" {
			return "", errors.New("source.status_host: Gogs has no commit status API, so flowd cannot report to it; leave source.status_host out and turn commit statuses off for this pipeline")
		}
		if h == "forgejo" || h == "codeberg" {
			return Gitea, nil
		}
		if _, ok := formats[h]; !ok {
			return "", fmt.Errorf("source.status_host %q is not a code host flowd reports to: use %s", host, kindsList)
		}
		return h, nil
	}
	if srcErr != nil {
		return "", fmt.Errorf("%v: set source.status_host to %s", srcErr, kindsList)
	}
	if k, ok := knownHosts[src.hostname]; ok {
		return k, nil
	}
	if strings.HasPrefix(src.path, "scm/") || strings.Contains(src.path, "/scm/") {
		return BitbucketServer, nil
	}
	if strings.Contains(src.hostname, "gogs") {
		return "", fmt.Errorf("%q looks like a Gogs server, and Gogs has no commit status API: if it is another host, set source.status_host to %s", src.shown, kindsList)
	}
	return "", fmt.Errorf("cannot tell the code host of %q: set source.status_host to %s", src.shown, kindsList)
}

func resolveAPI(kind, api string, src source, srcErr error) (string, error) {
	if api != "" {
		base, err := apiBase(strings.TrimSpace(api))
		if err != nil {
			return "", fmt.Errorf("source.status_api %q is not an http(s) URL such as https://git.example.com/api/v4", api)
		}
		return base, nil
	}
	switch kind {
	case Bitbucket:
		return publicAPIs["bitbucket.org"], nil // Bitbucket Cloud has one API
	case Codeup:
		return DefaultCodeupAPI, nil
	}
	if srcErr != nil {
		return "", fmt.Errorf("%v: set source.status_api to the %s API's base URL", srcErr, kind)
	}
	if a, ok := publicAPIs[src.hostname]; ok && knownHosts[src.hostname] == kind {
		return a, nil
	}
	scheme := src.scheme
	if scheme == "" {
		scheme = "https" // an SSH source: its port is SSH's, not the web's
	}
	base := scheme + "://" + src.host
	switch kind {
	case GitHub:
		return base + "/api/v3", nil // GitHub Enterprise Server
	case GitLab:
		return base + "/api/v4", nil
	case Gitea:
		return base + "/api/v1", nil
	case BitbucketServer:
		// A server under a context path (https://host/bitbucket/scm/P/r.git) has its REST API there too.
		if i := strings.Index("/"+src.path, "/scm/"); i > 0 && src.scheme != "" {
			return base + "/" + src.path[:i-1], nil
		}
		return base, nil
	}
	return "", fmt.Errorf("set source.status_api to the %s API's base URL", kind)
}

func resolveRepo(kind, repo string, src source, srcErr error) (string, error) {
	f := formats[kind]
	if repo != "" {
		segs := splitRepo(strings.TrimSuffix(strings.TrimSpace(repo), ".git"))
		if len(segs) < 2 {
			return "", fmt.Errorf("source.status_repo %q must have at least two path segments, such as %s", repo, repoShape[kind])
		}
		if !f.atLeast && len(segs) != f.segments {
			return "", fmt.Errorf("source.status_repo %q must be %s on %s", repo, repoShape[kind], kind)
		}
		return strings.Join(segs, "/"), nil
	}
	if srcErr != nil {
		return "", fmt.Errorf("%v: set source.status_repo to %s", srcErr, repoShape[kind])
	}
	p := src.path
	if kind == BitbucketServer {
		if i := strings.Index("/"+p, "/scm/"); i >= 0 {
			p = p[i+4:]
		}
	}
	segs := splitRepo(p)
	if len(segs) < 2 || !f.atLeast && len(segs) != f.segments {
		return "", fmt.Errorf("cannot tell the %s repository from %q: set source.status_repo to %s", kind, src.shown, repoShape[kind])
	}
	return strings.Join(segs, "/"), nil
}
