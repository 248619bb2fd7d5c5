package transport

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SecretEnv is the environment variable that may hold the cluster secret.
const SecretEnv = "DMLRUN_SECRET"

// ErrNoSecret: no cluster secret was configured.
var ErrNoSecret = errors.New("no cluster secret: pass -secret-file FILE or set " + SecretEnv)

// LoadSecret returns the cluster secret from file (surrounding white space
// trimmed) or, when file is empty, from $DMLRUN_SECRET.
func LoadSecret(file string) ([]byte, error) {
	var s string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster secret: %w", err)
		}
		s = strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("cluster secret: %s is empty", file)
		}
		return []byte(s), nil
	}
	if s = os.Getenv(SecretEnv); s == "" {
		return nil, ErrNoSecret
	}
	return []byte(s), nil
}

// GenerateSecret returns a fresh random secret (64 hex digits) for a run whose
// launcher starts every process itself.
func GenerateSecret() []byte {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return []byte(hex.EncodeToString(b[:]))
}
