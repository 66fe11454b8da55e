package githost

import "testing"

func TestNormalizeRepoURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"https://github.com/acme/app.git", "github.com/acme/app"},
		{"https://github.com/acme/app", "github.com/acme/app"},
		{"https://github.com/acme/app/", "github.com/acme/app"},
		{"https://github.com/acme/app.git/", "github.com/acme/app"},
		{"  http://GitHub.COM/acme/App  ", "github.com/acme/App"},
		{"https://user:token@github.com/acme/app.git", "github.com/acme/app"},
		{"https://github.com:443/acme/app", "github.com/acme/app"},
		{"http://example.com:80/acme/app", "example.com/acme/app"},
		{"http://localhost:3000/acme/app.git", "localhost:3000/acme/app"},
		{"https://example.com:8443/acme/app", "example.com:8443/acme/app"},
		{"git@github.com:acme/app.git", "github.com/acme/app"},
		{"github.com:acme/app", "github.com/acme/app"},
		{"git@GitHub.com:acme/app.git/", "github.com/acme/app"},
		{"ssh://git@github.com:22/acme/app", "github.com/acme/app"},
		{"ssh://git@github.com/acme/app.git", "github.com/acme/app"},
		{"ssh://git@bbs.local:7999/~gopher/app.git", "bbs.local:7999/~gopher/app"},
		{"git+ssh://git@github.com/acme/app.git", "github.com/acme/app"},
		{"git://github.com/acme/app.git", "github.com/acme/app"},
		{"git://github.com:9418/acme/app.git", "github.com/acme/app"},
		{"https://[::1]:8443/acme/app", "[::1]:8443/acme/app"},
		{"https://[::1]:443/acme/app", "[::1]/acme/app"},
		{"file:///srv/git/app.git", "file/srv/git/app"},
		{"file://localhost/srv/git/app.git/", "file/srv/git/app"},
		{"/srv/git/app.git", "file/srv/git/app"},
		{"/srv/git/../git/app/", "file/srv/git/app"},
		{"/srv/git/app", "file/srv/git/app"},
		{"repos/app.git", "file/repos/app"},
		{`C:\repos\app.git`, "file/C:/repos/app"},
		{"", ""},
		{"   ", ""},
	}
	for _, tc := range cases {
		if got := NormalizeRepoURL(tc.in); got != tc.want {
			t.Errorf("NormalizeRepoURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSameRepo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{
		{"https://github.com/acme/app.git", "git@github.com:acme/app.git", true},
		{"https://github.com/acme/app", "ssh://git@github.com:22/acme/app.git", true},
		{"https://github.com/acme/app/", "http://github.com/acme/app", true},
		{"https://GITHUB.com/Acme/App.git", "git@github.com:acme/app", true},
		{"https://git.example.com:443/acme/app", "https://git.example.com/acme/app", true},
		{"https://github.com/acme/app", "https://github.com/acme/other", false},
		{"https://github.com/acme/app", "https://gitlab.com/acme/app", false},
		{"https://git.example.com:8443/acme/app", "https://git.example.com/acme/app", false},
		{"/srv/git/app.git", "file:///srv/git/app", true},
		{"/srv/git/App.git", "/srv/git/app.git", false}, // local paths keep their case
		{"/srv/git/app.git", "/srv/git/other.git", false},
		{"", "", false},
		{"https://github.com/acme/app", "", false},
	}
	for _, tc := range cases {
		if got := SameRepo(tc.a, tc.b); got != tc.want {
			t.Errorf("SameRepo(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := SameRepo(tc.b, tc.a); got != tc.want {
			t.Errorf("SameRepo(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}
