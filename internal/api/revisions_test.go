package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/auth"
)

type revisionAnswer struct {
	Revision  int64   `json:"revision"`
	CreatedBy string  `json:"created_by"`
	CreatedAt string  `json:"created_at"`
	Current   bool    `json:"current"`
	YAML      *string `json:"yaml"`
}

type revisionsAnswer struct {
	Revisions  []revisionAnswer `json:"revisions"`
	NextBefore *int64           `json:"next_before"`
}

// TestRevisions lists a pipeline's revisions page by page, reads one, and checks who may.
func TestRevisions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice, bob, carol, mallory := e.user("alice", false), e.user("bob", false), e.user("carol", false), e.user("mallory", false)
		e.createPipeline("hello", alice, map[*testUser]auth.Role{&bob: auth.Viewer, &carol: auth.Admin})
		for i, who := range []testUser{alice, carol} {
			src := strings.Replace(testDefinition("hello"), "Say hello", "Say hello "+itoa(int64(i+2)), 1)
			if r := e.yaml("PUT", "/api/v1/pipelines/hello", who.Token, src); r.Status != http.StatusOK {
				t.Fatalf("update: %s", r)
			}
		}

		var page revisionsAnswer
		r := e.call("GET", "/api/v1/pipelines/hello/revisions?limit=2", bob.Token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("viewer lists revisions: %s", r)
		}
		r.json(t, &page)
		if len(page.Revisions) != 2 || page.Revisions[0].Revision != 3 || page.Revisions[1].Revision != 2 ||
			page.Revisions[0].CreatedBy != "carol" || page.Revisions[1].CreatedBy != "alice" ||
			!page.Revisions[0].Current || page.Revisions[1].Current || page.Revisions[0].YAML != nil ||
			page.NextBefore == nil || *page.NextBefore != 2 {
			t.Fatalf("first page = %s", r)
		}
		r = e.call("GET", "/api/v1/pipelines/hello/revisions?limit=2&before=2", bob.Token, nil)
		page = revisionsAnswer{}
		r.json(t, &page)
		if r.Status != http.StatusOK || len(page.Revisions) != 1 || page.Revisions[0].Revision != 1 || page.NextBefore != nil {
			t.Fatalf("second page = %s", r)
		}

		var one revisionAnswer
		r = e.call("GET", "/api/v1/pipelines/hello/revisions/2", bob.Token, nil)
		r.json(t, &one)
		if r.Status != http.StatusOK || one.Revision != 2 || one.CreatedBy != "alice" || one.Current || one.YAML == nil ||
			!strings.Contains(*one.YAML, "Say hello 2") || strings.Contains(*one.YAML, secretValue) || !strings.Contains(*one.YAML, "***") {
			t.Fatalf("revision 2 = %s", r)
		}

		for _, path := range []string{"/revisions", "/revisions/1"} {
			if r := e.call("GET", "/api/v1/pipelines/hello"+path, mallory.Token, nil); r.Status != http.StatusNotFound {
				t.Errorf("non-member GET %s = %s, want 404", path, r)
			}
			if r := e.call("GET", "/api/v1/pipelines/hello"+path, "", nil); r.Status != http.StatusUnauthorized {
				t.Errorf("anonymous GET %s = %s, want 401", path, r)
			}
		}
		for _, rev := range []string{"0", "4", "x", "-1"} {
			if r := e.call("GET", "/api/v1/pipelines/hello/revisions/"+rev, alice.Token, nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "revisions are 1 to 3") {
				t.Errorf("revision %s = %s, want 404 naming the revisions", rev, r)
			}
		}
		if r := e.call("GET", "/api/v1/pipelines/hello/revisions?limit=0", alice.Token, nil); r.Status != http.StatusBadRequest {
			t.Errorf("limit=0 = %s, want 400", r)
		}
	})
}

// TestRevisionRestore restores an old revision: a new revision with its text, whose secrets
// keep their current values where the current revision has them and take the old revision's
// values otherwise.
func TestRevisionRestore(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice, bob, mallory := e.user("alice", false), e.user("bob", false), e.user("mallory", false)
		// Revision 1 has the secrets API_KEY and OLD_TOKEN.
		rev1 := addVariable(testDefinition("hello"), "  OLD_TOKEN: {secret: true, default: old-token-value}\n")
		if r := e.yaml("POST", "/api/v1/pipelines", alice.Token, rev1); r.Status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		if err := e.st.MemberSet(context.Background(), mustPipeline(t, e, "hello").ID, bob.ID, string(auth.Developer)); err != nil {
			t.Fatal(err)
		}
		// Revision 2 drops OLD_TOKEN and replaces API_KEY's value.
		rev2 := strings.Replace(testDefinition("hello"), secretValue, "rotated-value", 1)
		rev2 = strings.Replace(rev2, "Say hello", "Say hello twice", 1)
		if r := e.yaml("PUT", "/api/v1/pipelines/hello", alice.Token, rev2); r.Status != http.StatusOK {
			t.Fatalf("update: %s", r)
		}
		old := mustRevisionText(t, e, "hello", 1, alice.Token)

		if r := e.call("POST", "/api/v1/pipelines/hello/revisions/1/restore", bob.Token, nil); r.Status != http.StatusForbidden {
			t.Errorf("developer restore = %s, want 403", r)
		}
		if r := e.call("POST", "/api/v1/pipelines/hello/revisions/1/restore", mallory.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("non-member restore = %s, want 404", r)
		}
		if r := e.call("POST", "/api/v1/pipelines/hello/revisions/2/restore", alice.Token, nil); r.Status != http.StatusConflict {
			t.Errorf("restore of the current revision = %s, want 409", r)
		}
		if r := e.call("POST", "/api/v1/pipelines/hello/revisions/9/restore", alice.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("restore of revision 9 = %s, want 404", r)
		}

		r := e.call("POST", "/api/v1/pipelines/hello/revisions/1/restore", alice.Token, nil)
		var p pipelineAnswer
		r.json(t, &p)
		if r.Status != http.StatusOK || p.Revision != 3 || p.YAML != old || p.Description != "Say hello" {
			t.Fatalf("restore = %s, want revision 3 with revision 1's text", r)
		}
		if got := mustRevisionText(t, e, "hello", 3, bob.Token); got != old {
			t.Errorf("revision 3 text = %q, want revision 1's %q", got, old)
		}
		got := storedSecrets(t, e, "hello")
		if got["API_KEY"] != "rotated-value" || got["OLD_TOKEN"] != "old-token-value" || len(got) != 2 {
			t.Errorf("restored secrets = %v, want API_KEY kept at its current value and OLD_TOKEN back from revision 1", got)
		}
	})
}

// addVariable adds the variable line v to the end of def's variables block.
func addVariable(def, v string) string {
	i := strings.Index(def, "stages:\n")
	return def[:i] + v + def[i:]
}

func mustRevisionText(t *testing.T, e *env, pipeline string, rev int64, token string) string {
	t.Helper()
	r := e.call("GET", "/api/v1/pipelines/"+pipeline+"/revisions/"+itoa(rev), token, nil)
	var one revisionAnswer
	r.json(t, &one)
	if r.Status != http.StatusOK || one.YAML == nil {
		t.Fatalf("revision %d: %s", rev, r)
	}
	return *one.YAML
}
