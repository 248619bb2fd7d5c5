package transport

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// SecretEnv is the environment variable that may hold the cluster secret.
const SecretEnv = "DMLRUN_SECRET"

// MinSecretLen is the shortest cluster secret LoadSecret accepts, in bytes
// (after a file's surrounding white space is trimmed).
const MinSecretLen = 16

// makeSecret is the advice an error about a missing or weak secret gives.
const makeSecret = "make one with: head -c 32 /dev/urandom | base64 > secret; chmod 600 secret"

// ErrNoSecret: no cluster secret was configured.
var ErrNoSecret = errors.New("no cluster secret: pass -secret-file FILE or set " + SecretEnv)

// LoadSecret returns the cluster secret from file (surrounding white space
// trimmed) or, when file is empty, from $DMLRUN_SECRET (taken as it is).
//
// As ssh does with a private key, it refuses a file that its group or others
// may read, write or execute (any of the mode bits 0077), and names the file,
// its mode and the chmod that fixes it. It refuses a secret shorter than
// MinSecretLen bytes, from either source.
func LoadSecret(file string) ([]byte, error) {
	if file == "" {
		s := os.Getenv(SecretEnv)
		if s == "" {
			return nil, ErrNoSecret
		}
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("cluster secret: $%s is %d bytes, too short: it must be at least %d bytes; %s, then pass -secret-file secret",
				SecretEnv, len(s), MinSecretLen, makeSecret)
		}
		return []byte(s), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err) // *PathError: names the file
	}
	defer f.Close()
	// Stat the open file, not the name: the mode checked is the one of the
	// bytes read.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("cluster secret: permissions %04o for %s are too open: it must not be accessible by group or others; run: chmod 600 %s",
			perm, file, shellQuote(file))
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: reading %s: %w", file, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("cluster secret: %s is empty; %s", file, makeSecret)
	}
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("cluster secret: %s holds %d bytes, too short: it must be at least %d bytes; %s",
			file, len(s), MinSecretLen, makeSecret)
	}
	return []byte(s), nil
}

// shellQuote quotes s for a POSIX shell when it needs it, so that the chmod
// an error suggests can be pasted as it is.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
