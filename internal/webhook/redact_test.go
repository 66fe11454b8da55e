package webhook

import (
	"net/http"
	"reflect"
	"testing"
)

func TestRedactHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret bool
	}{
		{"Authorization", true},
		{"Proxy-Authorization", true},
		{"Cookie", true},
		{"X-Hub-Signature", true},
		{"X-Hub-Signature-256", true},
		{"X-Gitlab-Token", true},
		{"X-Codeup-Token", true},
		{"X-Gitea-Signature", true},
		{"X-Gogs-Signature", true},
		{"x-gitlab-token", true}, // not canonical
		{"X-Auth-Token", true},
		{"X-Webhook-Secret", true},
		{"X-My-SIGNATURE", true},
		{"Db-Password", true},
		{"Content-Type", false},
		{"User-Agent", false},
		{"X-GitHub-Event", false},
		{"X-GitHub-Delivery", false},
		{"Idempotency-Key", false},
		{"X-Event-Key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{tt.name: {"a", "b"}}
			got := RedactHeaders(h)
			want := []string{"a", "b"}
			if tt.secret {
				want = []string{"[redacted]", "[redacted]"}
			}
			if !reflect.DeepEqual(got, map[string][]string{tt.name: want}) {
				t.Errorf("RedactHeaders(%v) = %v, want %s: %v", h, got, tt.name, want)
			}
			if h[tt.name][0] != "a" {
				t.Errorf("the input was changed: %v", h)
			}
		})
	}
}

func TestRedactHeadersCopies(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {"application/json"}, "X-Empty": nil}
	got := RedactHeaders(h)
	got["Content-Type"][0] = "changed"
	if h.Get("Content-Type") != "application/json" {
		t.Error("the copy shares its values with the input")
	}
	if _, ok := got["X-Empty"]; !ok {
		t.Error("a header without values was dropped")
	}
	if got := RedactHeaders(nil); got == nil || len(got) != 0 {
		t.Errorf("RedactHeaders(nil) = %#v, want an empty map", got)
	}
}
