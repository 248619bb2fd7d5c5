package train

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FuzzReadModelFile: whatever model.json holds, ReadModelFile returns an
// error or a model whose parameters are θ, without panicking and without
// allocating for what a shape merely claims. The seeds are in
// testdata/fuzz/FuzzReadModelFile/.
func FuzzReadModelFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "model.json") // a fuzz worker runs one input at a time
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		mf, m, err := ReadModelFile(path)
		runtime.ReadMemStats(&after)
		// Decoding θ costs a few times its text; a model, a few times θ.
		if grew, bound := after.TotalAlloc-before.TotalAlloc, uint64(64<<20+64*len(b)); grew > bound {
			t.Fatalf("ReadModelFile of %d bytes allocated %d bytes (err %v)", len(b), grew, err)
		}
		if err != nil {
			if mf != nil || m != nil {
				t.Fatalf("ReadModelFile returned a model and the error %v", err)
			}
			return
		}
		if mf == nil || m == nil {
			t.Fatal("ReadModelFile returned neither a model nor an error")
		}
		if m.NumParams() != len(mf.Theta) || mf.Shape.Params != len(mf.Theta) {
			t.Fatalf("a model of %d parameters, θ of %d, the shape says %d", m.NumParams(), len(mf.Theta), mf.Shape.Params)
		}
		// The model it accepted must predict without panicking.
		x := make([]float64, mf.Shape.Features)
		mf.Standardize(x)
		out := make([]float64, m.Outputs())
		m.Predict(mf.Theta, x, out)
	})
}
