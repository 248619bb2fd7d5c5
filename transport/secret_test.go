package transport

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	// write creates dir/name holding content with exactly mode perm (no umask).
	write := func(name, content string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const long = "0123456789abcdef0123456789abcdef" // 32 bytes
	const sixteen = "0123456789abcdef"
	howTo := "head -c 32 /dev/urandom | base64 > secret; chmod 600 secret"
	tooOpen := func(name string, perm os.FileMode) (string, []string) {
		p := write(name, long+"\n", perm)
		return p, []string{p, fmt.Sprintf("permissions %04o", perm), "too open", "chmod 600 " + p}
	}
	p0640, e0640 := tooOpen("g-r", 0o640)
	p0644, e0644 := tooOpen("go-r", 0o644)
	p0604, e0604 := tooOpen("o-r", 0o604)
	p0620, e0620 := tooOpen("g-w", 0o620)
	p0660, e0660 := tooOpen("g-rw", 0o660)
	spaced := write("my secret", long, 0o644)
	short := write("short", "0123456789abcde\n", 0o600) // 15 bytes once trimmed
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		file    string
		env     string
		want    string
		wantErr error    // checked with errors.Is
		errText []string // the error must mention each
	}{
		{name: "file 0600", file: write("plain", long, 0o600), want: long},
		{name: "file 0400", file: write("read-only", long, 0o400), want: long},
		{name: "file of exactly 16 bytes", file: write("sixteen", sixteen+"\n", 0o600), want: sixteen},
		{name: "file, white space trimmed", file: write("spaced", " \t "+long+" \r\n\n", 0o600), want: long},
		{name: "file wins over env", file: write("wins", long+"\n", 0o600), env: "from-env-0123456789", want: long},
		{name: "file wins over a short env", file: write("wins-short", long+"\n", 0o600), env: "abc", want: long},
		{name: "file 0640 refused", file: p0640, errText: e0640},
		{name: "file 0644 refused", file: p0644, errText: e0644},
		{name: "file 0604 refused", file: p0604, errText: e0604},
		{name: "file 0620 refused", file: p0620, errText: e0620},
		{name: "file 0660 refused", file: p0660, errText: e0660},
		{name: "chmod advice quoted for the shell", file: spaced, errText: []string{"chmod 600 '" + spaced + "'"}},
		{name: "short file refused", file: short, errText: []string{short, "15 bytes", "at least 16 bytes", howTo}},
		{name: "empty file", file: write("empty", "", 0o600), errText: []string{"is empty", howTo}},
		{name: "white space only", file: write("blank", " \n\t\n", 0o600), errText: []string{"is empty"}},
		{name: "missing file", file: missing, wantErr: fs.ErrNotExist, errText: []string{missing}},
		{name: "long env", env: "from-env-0123456789", want: "from-env-0123456789"},
		{name: "env of exactly 16 bytes", env: sixteen, want: sixteen},
		{name: "short env refused", env: "abc", errText: []string{"$" + SecretEnv, "3 bytes", "at least 16 bytes", howTo}},
		{name: "15-byte env refused", env: "0123456789abcde", errText: []string{"15 bytes", "at least 16 bytes"}},
		{name: "neither", wantErr: ErrNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(SecretEnv, tc.env)
			got, err := LoadSecret(tc.file)
			if tc.wantErr == nil && tc.errText == nil {
				if err != nil {
					t.Fatalf("LoadSecret: %v", err)
				}
				if string(got) != tc.want {
					t.Errorf("LoadSecret = %q, want %q", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadSecret = %q, want an error", got)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("LoadSecret: %v, want %v", err, tc.wantErr)
			}
			for _, w := range tc.errText {
				mustMention(t, err, w)
			}
			if strings.Contains(err.Error(), long) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	for _, s := range [][]byte{a, b} {
		if len(s) != 64 {
			t.Errorf("secret %q has %d characters, want 64", s, len(s))
		}
		if len(s) < MinSecretLen {
			t.Errorf("secret %q is shorter than MinSecretLen (%d)", s, MinSecretLen)
		}
		if _, err := hex.DecodeString(string(s)); err != nil {
			t.Errorf("secret %q is not hex: %v", s, err)
		}
	}
	if bytes.Equal(a, b) {
		t.Errorf("two calls gave the same secret %q", a)
	}
	// A generated secret, saved as the docs say, loads back unchanged.
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, append(a, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSecret(p)
	if err != nil || !bytes.Equal(got, a) {
		t.Errorf("LoadSecret of a generated secret = %q, %v; want %q", got, err, a)
	}
	t.Setenv(SecretEnv, string(a))
	if got, err := LoadSecret(""); err != nil || !bytes.Equal(got, a) {
		t.Errorf("LoadSecret($%s) of a generated secret = %q, %v; want %q", SecretEnv, got, err, a)
	}
}
