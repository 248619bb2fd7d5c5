package node

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dmlrun/dmlrun/data"
)

// imbalancedCSV writes rows rows of 3 features and a label drawn with the
// given class probabilities (labels as written: binary may use -1/+1) and
// returns the path, the features and the labels as the models see them
// (class indices).
func imbalancedCSV(t *testing.T, rows int, probs []float64, labels []string, seed uint64) (string, [][]float64, []int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	var b strings.Builder
	b.WriteString("a,b,c,y\n")
	var xs [][]float64
	var ys []int
	for range rows {
		u, c := r.Float64(), 0
		for c < len(probs)-1 && u >= probs[c] {
			u -= probs[c]
			c++
		}
		x := []float64{math.Round(r.NormFloat64()*100) / 100, float64(c) + math.Round(r.NormFloat64()*100)/100, math.Round(r.NormFloat64()*100) / 100}
		fmt.Fprintf(&b, "%v,%v,%v,%s\n", x[0], x[1], x[2], labels[c])
		xs, ys = append(xs, x), append(ys, c)
	}
	p := filepath.Join(t.TempDir(), "imbalanced.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, xs, ys
}

// refGrad is the textbook gradient, by a loop over the rows: logistic
// (K = 2, θ = [w, b], dloss/dz = σ(z) - y) or softmax (θ = [W (K×F), b (K)],
// dloss/dz_k = p_k - [y = k]), each row's term weighed by w[y], summed and
// divided by the number of rows.
func refGrad(theta []float64, xs [][]float64, ys []int, rows []int, k int, w []float64) []float64 {
	f := len(xs[0])
	g := make([]float64, len(theta))
	for _, i := range rows {
		x, y := xs[i], ys[i]
		cw := 1.0
		if w != nil {
			cw = w[y]
		}
		if k == 2 {
			z := theta[f]
			for j := range f {
				z += theta[j] * x[j]
			}
			d := cw * (1/(1+math.Exp(-z)) - float64(y))
			for j := range f {
				g[j] += d * x[j]
			}
			g[f] += d
			continue
		}
		z := make([]float64, k)
		var sum float64
		for c := range k {
			z[c] = theta[k*f+c]
			for j := range f {
				z[c] += theta[c*f+j] * x[j]
			}
			sum += math.Exp(z[c])
		}
		for c := range k {
			d := math.Exp(z[c]) / sum
			if c == y {
				d--
			}
			d *= cw
			for j := range f {
				g[c*f+j] += d * x[j]
			}
			g[k*f+c] += d
		}
	}
	for i := range g {
		g[i] /= float64(len(rows))
	}
	return g
}

// TestImbalanceGradient runs SGD steps on 1 and 3 nodes with class weights
// and resampled epochs and checks θ after every step against a plain loop:
// θ -= lr · (1/B) Σ_{rows of the batch} w[y] ∇loss. The batch is the epoch's
// permutation, or the resampled sequence mapped through the rows of each
// class in row order (counted here from all the labels).
func TestImbalanceGradient(t *testing.T) {
	bin, bx, by := imbalancedCSV(t, 157, []float64{0.85, 0.15}, []string{"-1", "1"}, 1)
	multi, mx, my := imbalancedCSV(t, 143, []float64{0.7, 0.2, 0.1}, []string{"0", "1", "2"}, 2)
	const seed, batch, lr = 11, 20, 0.5
	for _, c := range []struct {
		name, model, resample string
		csv                   string
		xs                    [][]float64
		ys                    []int
		k                     int
		weights               func(counts []float64) []float64 // nil: none
		valFrac               float64                          // training.validation_fraction
	}{
		{"logistic balanced", "{kind: logistic, class_weight: balanced}", "", bin, bx, by, 2, balanced, 0},
		{"logistic map -1/+1", "{kind: logistic, class_weight: {-1: 0.5, 1: 4}}", "", bin, bx, by, 2,
			func([]float64) []float64 { return []float64{0.5, 4} }, 0},
		{"softmax balanced", "{kind: softmax, class_weight: balanced}", "", multi, mx, my, 3, balanced, 0},
		{"logistic under", "{kind: logistic}", "under", bin, bx, by, 2, nil, 0},
		{"softmax over", "{kind: softmax}", "over", multi, mx, my, 3, nil, 0},
		{"softmax under, weights", "{kind: softmax, class_weight: {2: 3}}", "under", multi, mx, my, 3,
			func([]float64) []float64 { return []float64{1, 1, 3} }, 0},
		// The validation split holds rows out of the counts and the epochs.
		{"logistic balanced, validation", "{kind: logistic, class_weight: balanced}", "", bin, bx, by, 2, balanced, 0.25},
		{"softmax over, validation", "{kind: softmax, class_weight: balanced}", "over", multi, mx, my, 3, balanced, 0.3},
	} {
		held := func(row int) bool { return c.valFrac > 0 && isValidation(seed, row, c.valFrac) }
		counts := make([]float64, c.k)
		for i, y := range c.ys {
			if !held(i) {
				counts[y]++
			}
		}
		var w []float64
		if c.weights != nil {
			w = c.weights(counts)
		}
		// The reference schedule: the rows of each class in row order, and a
		// resampler built from per-shard counts taken from all the labels.
		N := len(c.ys)
		s := data.NewSharding(N, 0)
		var byClass []int
		for k := range c.k {
			for i, y := range c.ys {
				if y == k && !held(i) {
					byClass = append(byClass, i)
				}
			}
		}
		shardCounts := make([]float64, s.Shards()*c.k)
		for i, y := range c.ys {
			if !held(i) {
				shardCounts[s.ShardOf(i)*c.k+y]++
			}
		}
		var ref *data.Resampler
		if c.resample != "" {
			var err error
			if ref, err = data.NewResampler(seed, c.resample, s, c.k, shardCounts, batch, held); err != nil {
				t.Fatal(err)
			}
		}
		batchRows := func(step int) []int {
			if ref == nil {
				spe := (N + batch - 1) / batch
				perm := data.Permutation(seed, step/spe, N, nil)
				k := step % spe
				var rows []int
				for _, row := range perm[k*batch : min((k+1)*batch, N)] {
					if !held(row) {
						rows = append(rows, row)
					}
				}
				return rows
			}
			_, _, entries := ref.Entries(step)
			rows := make([]int, len(entries))
			for i, e := range entries {
				rows[i] = byClass[e]
			}
			return rows
		}
		steps := (N+batch-1)/batch + 2 // into the second epoch
		if ref != nil {
			steps = ref.StepsPerEpoch() + 2
		}
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprint(c.name, " n=", n), func(t *testing.T) {
				val := ""
				if c.valFrac > 0 {
					val = fmt.Sprintf(", validation_fraction: %v, tol: 0.001", c.valFrac)
				}
				trs := testTrainers(t, n, fmt.Sprintf(`
seed: %d
data: {train: %s, label: y, resample: "%s"}
model: %s
optimizer: {kind: sgd, lr: %v}
training: {batch_size: %d, steps: %d%s}
`, seed, c.csv, c.resample, c.model, lr, batch, steps, val))
				if ref != nil && trs[0].perEpoch != ref.StepsPerEpoch() {
					t.Fatalf("%d steps per epoch, want %d", trs[0].perEpoch, ref.StepsPerEpoch())
				}
				theta := make([]float64, len(trs[0].cands[0].theta))
				for step := range steps {
					if rows := batchRows(step); len(rows) > 0 {
						g := refGrad(theta, c.xs, c.ys, rows, c.k, w)
						for i := range theta {
							theta[i] -= lr * g[i]
						}
					}
					runStep(t, trs, step)
					for _, tr := range trs {
						for i := range theta {
							if d := math.Abs(tr.cands[0].theta[i] - theta[i]); d > 1e-12*math.Max(1, math.Abs(theta[i])) {
								t.Fatalf("step %d, rank %d: θ[%d] = %v, the reference %v", step, tr.comm().Rank(), i, tr.cands[0].theta[i], theta[i])
							}
						}
					}
				}
			})
		}
	}
}

func balanced(counts []float64) []float64 {
	var n float64
	for _, c := range counts {
		n += c
	}
	w := make([]float64, len(counts))
	for k, c := range counts {
		w[k] = n / (float64(len(counts)) * c)
	}
	return w
}

// runStep runs step on every trainer at once.
func runStep(t *testing.T, trs []*trainer, step int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(trs))
	for i, tr := range trs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tr.step(&stepContext{Context: context.Background()}, step)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
}

// TestClassWeightUnknownLabel: a class_weight label that no training row
// has stops the start, naming the key and the labels there are.
func TestClassWeightUnknownLabel(t *testing.T) {
	p, _, _ := imbalancedCSV(t, 60, []float64{0.5, 0.3, 0, 0.2}, []string{"0", "1", "2", "3"}, 4)
	for _, c := range []struct{ weights, want string }{
		{"{2: 3}", "model.class_weight: label 2 is not a label of the training data " + p + " (its labels: 0, 1, 3)"},
		{"{7: 3}", "model.class_weight: label 7 is not a label of the training data"},
	} {
		_, err := startTrainers(t, 2, fmt.Sprintf("data: {train: %s, label: y}\nmodel: {kind: softmax, class_weight: %s}\n", p, c.weights))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.weights, err, c.want)
		}
	}
}
