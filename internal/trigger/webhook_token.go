package trigger

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/flowd/flowd/internal/auth"
)

// NewWebhookToken returns a new webhook token (256 random bits, URL-safe) and its look-up hash.
func NewWebhookToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("trigger: new webhook token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashWebhookToken(token), nil
}

// HashWebhookToken is the look-up key of a webhook token: its SHA-256.
//
// Finding a trigger by this hash instead of comparing tokens is safe against timing attacks:
// the database compares hashes, and whatever an attacker learns from timing is a prefix of
// the SHA-256 of their own guess, which says nothing about the hash of a token they do not
// know (a preimage). A token carries 256 random bits, so a fast unsalted hash is enough.
func HashWebhookToken(token string) []byte { return auth.HashToken(token) }
