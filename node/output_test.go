package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckOutputDir(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, wantErr string
	}{
		{filepath.Join(root, "new", "deeper"), ""},
		{root, ""},
		{filepath.Join(file, "out"), "output directory: mkdir " + file},
		{file, "output directory: mkdir " + file},
	} {
		err := checkOutputDir(tc.dir)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.dir, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error containing %q", tc.dir, err, tc.wantErr)
		}
		if tc.wantErr == "" {
			if left, _ := filepath.Glob(filepath.Join(tc.dir, ".dmlrun-probe-*")); len(left) > 0 {
				t.Errorf("%s: probe files left: %v", tc.dir, left)
			}
		}
	}
}
