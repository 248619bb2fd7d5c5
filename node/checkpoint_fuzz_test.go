package node

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadCheckpoint: whatever checkpoint.json holds, readCheckpoint returns
// an error or a checkpoint that fits the run (its digest, 3 parameters, 3
// optimizer values, a step in 0..9, all finite, a whole data shape),
// without panicking. The seeds
// are in testdata/fuzz/FuzzReadCheckpoint/.
func FuzzReadCheckpoint(f *testing.F) {
	const digest, params, state, steps = "d1", 3, 3, 10
	good, err := json.Marshal(checkpoint{RunDigest: digest, Step: 4, Theta: []float64{1, 2, 3}, OptState: []float64{0, 0, 0}, WorldSize: 2,
		Data: &dataShape{Rows: 10, Features: 2, Classes: 2, Mean: []float64{0, 1}, Std: []float64{1, 2}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	path := filepath.Join(f.TempDir(), "checkpoint.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ck, err := readCheckpoint(path, digest)
		if err == nil {
			err = ck.fits(params, state, steps)
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("an existing file read as missing: %v", err)
			}
			return
		}
		if ck.RunDigest != digest || len(ck.Theta) != params || len(ck.OptState) != state || ck.Step < 0 || ck.Step >= steps || !finite(ck.Theta) || !finite(ck.OptState) ||
			ck.Data == nil || ck.Data.Rows <= 0 || (ck.Data.Mean != nil && len(ck.Data.Mean) != ck.Data.Features) {
			t.Fatalf("accepted a checkpoint that does not fit the run: %+v", ck)
		}
	})
}
