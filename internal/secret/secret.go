// Package secret encrypts values at rest (secret variables, webhook tokens) with AES-256-GCM
// under one server key, taken from FLOWD_SECRET_KEY or a generated secret.key file.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the name of the generated key in the data folder.
const KeyFile = "secret.key"

// Box seals and opens values with the server key.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret: key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Box{aead: aead}, nil
}

// LoadKey returns the server key: hexKey (FLOWD_SECRET_KEY, 64 hex characters) when given,
// else the key in dataDir/secret.key, generated (mode 0600) when missing.
func LoadKey(hexKey, dataDir string) ([]byte, error) {
	if hexKey != "" {
		k, err := hex.DecodeString(strings.TrimSpace(hexKey))
		if err != nil || len(k) != 32 {
			return nil, errors.New("FLOWD_SECRET_KEY must be 64 hex characters (32 bytes); make one with: openssl rand -hex 32")
		}
		return k, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("secret: %s does not hold 64 hex characters", path)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("secret: read key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("secret: generate key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	// Write the key in full to a temporary file, then link it into place: the link fails if
	// another process made the key first, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(dataDir, KeyFile+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process made it first: use theirs
			return LoadKey("", dataDir)
		}
		return nil, fmt.Errorf("secret: write key: %w", err)
	}
	return k, nil
}

// Seal encrypts plain; the result holds a random nonce and the ciphertext.
func (b *Box) Seal(plain []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret: nonce: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plain, nil), nil
}

// Open decrypts what Seal made.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, errors.New("secret: sealed value too short")
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errors.New("secret: cannot decrypt: wrong key (FLOWD_SECRET_KEY or secret.key changed?) or damaged value")
	}
	return plain, nil
}
