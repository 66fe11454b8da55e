package githost

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// sign returns the hex HMAC-SHA256 of body under secret.
func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const secret, body = "s3cret", `{"ref":"refs/heads/main"}`
	good, bad := sign(secret, body), sign("other", body)
	cases := []struct {
		name string
		p    Provider
		h    http.Header
		want string // "" = accepted, else in the message
	}{
		{"github right", GitHub, hdr("X-Hub-Signature-256", "sha256="+good), ""},
		{"github upper-case", GitHub, hdr("X-Hub-Signature-256", "SHA256="+strings.ToUpper(good)), ""},
		{"github wrong", GitHub, hdr("X-Hub-Signature-256", "sha256="+bad), "does not match"},
		{"github sha1 only", GitHub, hdr("X-Hub-Signature", "sha1=abcd"), "no X-Hub-Signature-256 header"},
		{"github no prefix", GitHub, hdr("X-Hub-Signature-256", good), "malformed"},
		{"github short", GitHub, hdr("X-Hub-Signature-256", "sha256=abcd"), "malformed"},
		{"github missing", GitHub, hdr(), "Settings → Webhooks"},

		{"gitlab right", GitLab, hdr("X-Gitlab-Token", secret), ""},
		{"gitlab wrong", GitLab, hdr("X-Gitlab-Token", "s3cre"), "does not match"},
		{"gitlab missing", GitLab, hdr(), "no X-Gitlab-Token header"},

		{"codeup right", Codeup, hdr("X-Codeup-Token", secret), ""},
		{"codeup gitlab header is not codeup's", Codeup, hdr("X-Gitlab-Token", secret), "no X-Codeup-Token header"},
		{"codeup wrong", Codeup, hdr("X-Codeup-Token", "nope"), "does not match"},

		{"gitea right", Gitea, hdr("X-Gitea-Signature", good), ""},
		{"gitea wrong", Gitea, hdr("X-Gitea-Signature", bad), "does not match"},
		{"gitea not hex", Gitea, hdr("X-Gitea-Signature", "zz"), "malformed"},
		{"gitea missing", Gitea, hdr("X-Hub-Signature-256", "sha256="+good), "no X-Gitea-Signature header"},
		{"forgejo right", Gitea, hdr("X-Forgejo-Signature", good, "X-Gitea-Signature", good), ""},
		{"forgejo wrong", Gitea, hdr("X-Forgejo-Signature", bad, "X-Gitea-Signature", good), "X-Forgejo-Signature does not match"},

		{"gogs right", Gogs, hdr("X-Gogs-Signature", good), ""},
		{"gogs wrong", Gogs, hdr("X-Gogs-Signature", bad), "does not match"},
		{"gogs missing", Gogs, hdr(), "no X-Gogs-Signature header"},

		{"bitbucket right", Bitbucket, hdr("X-Hub-Signature", "sha256="+good), ""},
		{"bitbucket wrong", Bitbucket, hdr("X-Hub-Signature", "sha256="+bad), "does not match"},
		{"bitbucket missing", Bitbucket, hdr(), "Repository settings → Webhooks"},

		{"bitbucket server right", BitbucketServer, hdr("X-Hub-Signature", "sha256="+good), ""},
		{"bitbucket server wrong", BitbucketServer, hdr("X-Hub-Signature", "sha256="+bad), "does not match"},
		{"bitbucket server missing", BitbucketServer, hdr(), "on Bitbucket Server"},

		{"unknown provider", "svn", hdr(), "not a known Git host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tc.p, tc.h, []byte(body), []byte(secret))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			var se *SignatureError
			if !errors.As(err, &se) {
				t.Fatalf("Verify = %v (%T), want a *SignatureError", err, err)
			}
			if !strings.Contains(se.Message, tc.want) {
				t.Errorf("message %q does not mention %q", se.Message, tc.want)
			}
			if strings.Contains(se.Message, good) || strings.Contains(se.Message, secret) {
				t.Errorf("message %q reveals the right value", se.Message)
			}
		})
	}
}

func TestVerifyMissingNamesHeaderAndPlace(t *testing.T) {
	t.Parallel()
	headers := map[Provider]string{
		GitHub: "X-Hub-Signature-256", GitLab: "X-Gitlab-Token", Codeup: "X-Codeup-Token",
		Gitea: "X-Gitea-Signature", Gogs: "X-Gogs-Signature",
		Bitbucket: "X-Hub-Signature", BitbucketServer: "X-Hub-Signature",
	}
	for _, p := range providers {
		err := Verify(p, hdr(), []byte("{}"), []byte("k"))
		if err == nil || !strings.Contains(err.Error(), headers[p]) || !strings.Contains(err.Error(), "Webhooks") {
			t.Errorf("%s: missing header error %v should name %s and where to set the secret", p, err, headers[p])
		}
	}
}

func TestVerifyBodyTamperAndEmptySecret(t *testing.T) {
	t.Parallel()
	h := hdr("X-Hub-Signature-256", "sha256="+sign("k", `{"a":1}`))
	if err := Verify(GitHub, h, []byte(`{"a":2}`), []byte("k")); err == nil {
		t.Error("a changed body was accepted")
	}
	if err := Verify(GitLab, hdr("X-Gitlab-Token", ""), nil, nil); err == nil {
		t.Error("an empty secret was accepted")
	}
}
