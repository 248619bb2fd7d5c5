package transport

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		file    string
		env     string
		want    string
		wantErr error  // checked with errors.Is
		errText string // the error must mention it
	}{
		{name: "file", file: write("plain", "s3cret"), want: "s3cret"},
		{name: "file, white space trimmed", file: write("spaced", " \t s3cret \r\n\n"), want: "s3cret"},
		{name: "file wins over env", file: write("wins", "from-file\n"), env: "from-env", want: "from-file"},
		{name: "empty file", file: write("empty", ""), errText: "is empty"},
		{name: "white space only", file: write("blank", " \n\t\n"), errText: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "missing"), wantErr: fs.ErrNotExist, errText: "missing"},
		{name: "env", env: "from-env", want: "from-env"},
		{name: "neither", wantErr: ErrNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(SecretEnv, tc.env)
			got, err := LoadSecret(tc.file)
			if tc.wantErr == nil && tc.errText == "" {
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
			if tc.errText != "" {
				mustMention(t, err, tc.errText)
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
		if _, err := hex.DecodeString(string(s)); err != nil {
			t.Errorf("secret %q is not hex: %v", s, err)
		}
	}
	if bytes.Equal(a, b) {
		t.Errorf("two calls gave the same secret %q", a)
	}
}
