package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestModelFileRoundTrip(t *testing.T) {
	m, tab := newTestModel(t, 5) // mlp multiclass
	f := ModelFile{Shape: m.Shape(), Theta: randTheta(m, 1), Mean: []float64{1, 2, 3, 4}, Std: []float64{2, 0, 1, 1}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "model.json", string(b))
	g, m2, err := ReadModelFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := slices.Clone(tab.Row(0))
	g.Standardize(x)
	if want := []float64{(tab.Row(0)[0] - 1) / 2, tab.Row(0)[1] - 2, tab.Row(0)[2] - 3, tab.Row(0)[3] - 4}; !slices.Equal(x, want) {
		t.Errorf("Standardize: %v, want %v", x, want)
	}
	a, c := make([]float64, m.Outputs()), make([]float64, m2.Outputs())
	m.Predict(f.Theta, x, a)
	m2.Predict(g.Theta, x, c)
	if !slices.Equal(a, c) {
		t.Errorf("predictions %v after a round trip, want %v", c, a)
	}
	f.Std = f.Std[:2]
	b, _ = json.Marshal(f)
	if _, _, err := ReadModelFile(writeFile(t, "bad.json", string(b))); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("ReadModelFile with 2 stds: %v", err)
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestModelFileHugeShape: a model.json whose shape claims billions of
// parameters is refused before anything of that size is built.
func TestModelFileHugeShape(t *testing.T) {
	for _, shape := range []string{
		`{"kind":"linear","task":"regression","features":2000000000,"layers":[2000000000,1],"params":2000000001}`,
		`{"kind":"mlp","task":"binary","features":2,"hidden":[1000000000],"activation":"relu","layers":[2,1000000000,1],"params":3}`,
		`{"kind":"softmax","task":"multiclass","features":2,"classes":2000000000,"layers":[2,2000000000],"params":3}`,
		`{"kind":"linear","task":"regression","features":2,"layers":[],"params":3}`,
	} {
		path := writeFile(t, "m.json", `{"shape":`+shape+`,"theta":[0,0,0]}`)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := ReadModelFile(path)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "m.json") {
			t.Errorf("shape %s: error %v", shape, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("shape %s: %d bytes allocated before refusing", shape, grew)
		}
	}
}
