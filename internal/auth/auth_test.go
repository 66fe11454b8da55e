package auth

import (
	"bytes"
	"strings"
	"testing"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		have, want Role
		ok         bool
	}{
		{Viewer, Viewer, true}, {Viewer, Developer, false}, {Developer, Viewer, true},
		{Developer, Admin, false}, {Admin, Developer, true}, {None, Viewer, false},
	}
	for _, c := range cases {
		if got := c.have.AtLeast(c.want); got != c.ok {
			t.Errorf("%q.AtLeast(%q) = %v", c.have, c.want, got)
		}
	}
	if Effective(None, true) != Admin || Effective(Viewer, false) != Viewer {
		t.Error("Effective: global admins act as pipeline admins, others with their role")
	}
	if r, err := ParseRole(" Developer "); err != nil || r != Developer {
		t.Errorf("ParseRole = %q, %v", r, err)
	}
	if _, err := ParseRole("owner"); err == nil {
		t.Error("ParseRole accepted an unknown role")
	}
}

func TestPasswords(t *testing.T) {
	t.Parallel()
	h, err := HashPasswordCost("correct horse", 4)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct horse") || !CheckPassword(h, "correct horse") || CheckPassword(h, "wrong horse") {
		t.Fatal("password hash does not check as it should")
	}
	if _, err := HashPasswordCost("short", 4); err == nil {
		t.Error("a 5-character password was accepted")
	}
	if _, err := HashPasswordCost(strings.Repeat("x", 73), 4); err == nil {
		t.Error("a password over bcrypt's 72 bytes was accepted")
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	a, ha, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewToken()
	if a == b || !strings.HasPrefix(a, TokenPrefix) || len(a) < len(TokenPrefix)+43 {
		t.Fatalf("tokens %q %q: want distinct, prefixed, 256 bits", a, b)
	}
	if !bytes.Equal(ha, HashToken(a)) || bytes.Equal(ha, HashToken(b)) {
		t.Fatal("HashToken does not match NewToken's hash")
	}
}

func TestValidUsername(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"admin", "alice.b", "a-1_2"} {
		if !ValidUsername(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "Alice", "-a", "a b", strings.Repeat("a", 64)} {
		if ValidUsername(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
