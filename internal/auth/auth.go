// Package auth holds flowd's rules for who may do what: password hashing, API token generation
// and hashing, and pipeline roles. It is pure: the store keeps users, tokens and members; the API
// asks this package what they allow.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Role is a user's role on a pipeline.
type Role string

// The roles, weakest first. None is "not a member".
const (
	None      Role = ""
	Viewer    Role = "viewer"
	Developer Role = "developer"
	Admin     Role = "admin"
)

// ParseRole accepts "viewer", "developer" or "admin".
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case Viewer, Developer, Admin:
		return r, nil
	}
	return None, fmt.Errorf("unknown role %q: use viewer, developer or admin", s)
}

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Developer:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// AtLeast reports whether r is want or stronger.
func (r Role) AtLeast(want Role) bool { return r.rank() >= want.rank() }

// Effective is the role a user acts with on a pipeline: global admins act as pipeline admins.
func Effective(member Role, globalAdmin bool) Role {
	if globalAdmin {
		return Admin
	}
	return member
}

// BcryptCost is the cost of password hashes; tests may lower it through HashPasswordCost.
const BcryptCost = 11

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 8

// HashPassword hashes a password with bcrypt.
func HashPassword(password string) (string, error) {
	return HashPasswordCost(password, BcryptCost)
}

// HashPasswordCost hashes with a given bcrypt cost.
func HashPasswordCost(password string, cost int) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password too short: use at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		return "", errors.New("password too long: use at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches hash (in constant time).
func CheckPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// dummyHash lets a sign-in with an unknown user cost as much as one with a wrong password: it
// has the cost of every stored hash (BcryptCost); see Throttle.Verify.
const dummyHash = "$2a$11$b0m5AqnjcuaZcVRZpRQaK.8zBqV9L87j.olVSro/2LLwbVyVcR/H2"

// TokenPrefix starts every API token, so leaked tokens are easy to find.
const TokenPrefix = "flowd_"

// NewToken returns a new API token (256 random bits) and the hash the store keeps.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("auth: new token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the look-up hash of a token: SHA-256, since tokens carry 256 random bits.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidUsername reports whether s may be a user name: [a-z0-9][a-z0-9._-]{0,62}.
func ValidUsername(s string) bool { return usernameRE.MatchString(s) }

// RandomPassword returns a password for the first admin when none was given.
func RandomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
