package githost

import (
	"net/url"
	"path"
	"strings"
)

// defaultPorts are the ports NormalizeRepoURL drops, by scheme.
var defaultPorts = map[string]string{
	"http": "80", "https": "443", "ssh": "22", "git+ssh": "22", "ssh+git": "22", "git": "9418",
}

// NormalizeRepoURL returns the comparable form of a repository URL, host/path: no scheme, no
// user, a lower-case host, no port when it is the scheme's default, no ".git" and no trailing
// slash. scp-like SSH addresses ("git@host:org/repo.git") give the same form as URLs
// ("ssh://git@host:22/org/repo" → "host/org/repo"). Local repositories (file:// URLs and plain
// paths such as /srv/git/app.git) give "file" and the cleaned path without ".git"
// ("file/srv/git/app"), so tests with local bare repositories match too. Path case is kept.
// A blank u gives "".
func NormalizeRepoURL(u string) string {
	s := strings.TrimSpace(u)
	if s == "" {
		return ""
	}
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "file://") {
		rest := s[len("file://"):]
		if i := strings.IndexByte(rest, '/'); i > 0 {
			rest = rest[i:] // file://localhost/srv/x: the host part says nothing
		} else if i < 0 {
			rest = "/" + rest
		}
		return localRepo(rest)
	}
	if strings.HasPrefix(s, "/") || isDrivePath(s) {
		return localRepo(s)
	}
	if strings.Contains(s, "://") {
		if p, err := url.Parse(s); err == nil && p.Host != "" {
			host := strings.ToLower(p.Hostname())
			if strings.Contains(host, ":") {
				host = "[" + host + "]" // IPv6
			}
			if port := p.Port(); port != "" && port != defaultPorts[strings.ToLower(p.Scheme)] {
				host += ":" + port
			}
			return host + repoURLPath(p.Path)
		}
		return strings.TrimSuffix(strings.TrimRight(lower, "/"), ".git")
	}
	// scp-like [user@]host:path: a colon with no slash before it.
	if c := strings.IndexByte(s, ':'); c > 0 && !strings.Contains(s[:c], "/") {
		host := s[:c]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		return strings.ToLower(host) + repoURLPath(s[c+1:])
	}
	return localRepo(s)
}

// SameRepo reports whether a and b name the same repository: their NormalizeRepoURL forms are
// equal, ignoring case outside local paths (every supported host treats owner and repository
// names case-insensitively). A blank URL is no repository.
func SameRepo(a, b string) bool {
	na, nb := NormalizeRepoURL(a), NormalizeRepoURL(b)
	if na == "" || nb == "" {
		return false
	}
	if strings.HasPrefix(na, "file/") || strings.HasPrefix(nb, "file/") {
		return na == nb
	}
	return strings.EqualFold(na, nb)
}

// repoURLPath cleans a URL's path: "/org/repo" with no ".git" or trailing slash, "" for none.
func repoURLPath(p string) string {
	p = path.Clean("/" + p)
	p = strings.TrimSuffix(p, ".git")
	p = strings.TrimRight(p, "/")
	return p
}

// localRepo is the comparable form of a local repository path.
func localRepo(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	rel := !strings.HasPrefix(p, "/")
	p = repoURLPath(p)
	if rel {
		p = strings.TrimPrefix(p, "/")
		return "file/" + p
	}
	return "file" + p
}

// isDrivePath reports whether s starts like a Windows path, C:\ or C:/.
func isDrivePath(s string) bool {
	return len(s) >= 3 && s[1] == ':' && (s[2] == '\\' || s[2] == '/') &&
		(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}
