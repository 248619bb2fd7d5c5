package train

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// modelCases are the models every model test runs on.
var modelCases = []struct {
	name    string
	spec    ModelSpec
	classes int
}{
	{"linear", ModelSpec{Kind: KindLinear, L2: 0.3}, 0},
	{"logistic", ModelSpec{Kind: KindLogistic, L2: 0.3}, 2},
	{"softmax", ModelSpec{Kind: KindSoftmax, L2: 0.3}, 3},
	{"mlp relu regression", ModelSpec{Kind: KindMLP, Hidden: []int{5}, Activation: ActReLU, Output: TaskRegression, L2: 0.3, Seed: 1}, 0},
	{"mlp relu binary", ModelSpec{Kind: KindMLP, Hidden: []int{5}, Activation: ActReLU, Output: TaskBinary, L2: 0.3, Seed: 2}, 2},
	{"mlp relu multiclass", ModelSpec{Kind: KindMLP, Hidden: []int{6, 4}, Activation: ActReLU, Output: TaskMulticlass, L2: 0.3, Seed: 3}, 4},
	{"mlp tanh regression", ModelSpec{Kind: KindMLP, Hidden: []int{5}, Activation: ActTanh, Output: TaskRegression, L2: 0.3, Seed: 4}, 0},
	{"mlp tanh binary", ModelSpec{Kind: KindMLP, Hidden: []int{4, 3}, Activation: ActTanh, Output: TaskBinary, L2: 0.3, Seed: 5}, 2},
	{"mlp tanh multiclass", ModelSpec{Kind: KindMLP, Hidden: []int{5}, Activation: ActTanh, Output: TaskMulticlass, L2: 0.3, Seed: 6}, 3},
}

// randTable returns n rows of f N(0,1) features with labels fit for task.
func randTable(seed uint64, n, f int, task string, classes int) *Table {
	r := rand.New(rand.NewPCG(seed, 99))
	t := &Table{Source: "random", Features: f}
	for range n {
		for range f {
			t.X = append(t.X, r.NormFloat64())
		}
		var y float64
		switch task {
		case TaskRegression:
			y = 3 * r.NormFloat64()
		case TaskBinary:
			y = float64(r.IntN(2))
		case TaskMulticlass:
			y = float64(r.IntN(classes))
		}
		t.Y = append(t.Y, y)
	}
	return t
}

func allRows(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

func randTheta(m Model, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	theta := make([]float64, m.NumParams())
	for i := range theta {
		theta[i] = 0.7 * r.NormFloat64()
	}
	return theta
}

// relErr returns ‖a-b‖/max(‖a‖,‖b‖), or 0 if both are 0.
func relErr(a, b []float64) float64 {
	var d, na, nb float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 && nb == 0 {
		return 0
	}
	return math.Sqrt(d / max(na, nb))
}

// numGrad returns the central-difference gradient of f at theta.
func numGrad(theta []float64, f func() float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(theta))
	for i := range theta {
		old := theta[i]
		theta[i] = old + h
		fp := f()
		theta[i] = old - h
		fm := f()
		theta[i] = old
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

func newTestModel(t *testing.T, i int) (Model, *Table) {
	t.Helper()
	c := modelCases[i]
	m, err := NewModel(c.spec, 4, c.classes)
	if err != nil {
		t.Fatal(err)
	}
	return m, randTable(uint64(i), 12, 4, m.Task(), c.classes)
}

func TestLossGradMatchesNumeric(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, tab := newTestModel(t, i)
			theta, rows := randTheta(m, uint64(i)), allRows(tab.Len())
			grad := make([]float64, m.NumParams())
			m.LossGrad(theta, tab, rows, grad)
			scratch := make([]float64, m.NumParams())
			num := numGrad(theta, func() float64 { return m.LossGrad(theta, tab, rows, scratch) })
			if e := relErr(grad, num); e > 1e-6 {
				t.Errorf("relative error %.3g between analytic and numeric gradient\nanalytic %v\nnumeric  %v", e, grad, num)
			}
		})
	}
}

func TestRegularizeMatchesNumeric(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newTestModel(t, i)
			theta := randTheta(m, uint64(i))
			grad := make([]float64, m.NumParams())
			m.Regularize(theta, grad)
			scratch := make([]float64, m.NumParams())
			num := numGrad(theta, func() float64 { return m.Regularize(theta, scratch) })
			if e := relErr(grad, num); e > 1e-6 {
				t.Errorf("relative error %.3g\nanalytic %v\nnumeric  %v", e, grad, num)
			}
			// Biases are not regularized: zero the weights and the penalty is 0.
			s := m.Shape()
			for l := 1; l < len(s.Layers); l++ {
				w, _ := m.(*network).layer(theta, l)
				clear(w)
			}
			if p := m.Regularize(theta, scratch); p != 0 {
				t.Errorf("penalty %v with all weights 0: biases must not be regularized", p)
			}
		})
	}
}

func TestLossGradSplitSums(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, tab := newTestModel(t, i)
			theta, rows := randTheta(m, uint64(i)), allRows(tab.Len())
			all := make([]float64, m.NumParams())
			lossAll := m.LossGrad(theta, tab, rows, all)
			a, b := make([]float64, m.NumParams()), make([]float64, m.NumParams())
			loss := m.LossGrad(theta, tab, rows[:5], a) + m.LossGrad(theta, tab, rows[5:], b)
			for j := range a {
				a[j] += b[j]
			}
			if e := relErr(all, a); e > 1e-12 {
				t.Errorf("gradient of all rows and sum of two parts differ: relative %.3g", e)
			}
			if math.Abs(loss-lossAll) > 1e-12*math.Abs(lossAll) {
				t.Errorf("loss of all rows %v, sum of two parts %v", lossAll, loss)
			}
		})
	}
}

func TestLossGradDoesNotAllocate(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, tab := newTestModel(t, i)
			theta, rows := randTheta(m, uint64(i)), allRows(tab.Len())
			grad := make([]float64, m.NumParams())
			if n := testing.AllocsPerRun(20, func() { m.LossGrad(theta, tab, rows, grad) }); n != 0 {
				t.Errorf("LossGrad: %v allocations per run, want 0", n)
			}
			if n := testing.AllocsPerRun(20, func() { m.Regularize(theta, grad) }); n != 0 {
				t.Errorf("Regularize: %v allocations per run, want 0", n)
			}
		})
	}
}

func TestInitAndPredict(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, tab := newTestModel(t, i)
			theta := make([]float64, m.NumParams())
			m.Init(theta)
			nonzero := 0
			for _, v := range theta {
				if v != 0 {
					nonzero++
				}
			}
			if (c.spec.Kind == KindMLP) != (nonzero > 0) {
				t.Errorf("Init of %s: %d nonzero parameters", c.spec.Kind, nonzero)
			}
			again := make([]float64, m.NumParams())
			m.Init(again)
			if relErr(theta, again) != 0 {
				t.Error("Init is not deterministic")
			}
			theta = randTheta(m, 1)
			out := make([]float64, m.Outputs())
			m.Predict(theta, tab.Row(0), out)
			switch m.Task() {
			case TaskBinary:
				if out[0] < 0 || out[0] > 1 {
					t.Errorf("P(1) = %v", out[0])
				}
			case TaskMulticlass:
				var s float64
				for _, p := range out {
					s += p
				}
				if len(out) != c.classes || math.Abs(s-1) > 1e-12 {
					t.Errorf("probabilities %v: want %d summing to 1", out, c.classes)
				}
			}
		})
	}
}

func TestLinearPredictAndLoss(t *testing.T) {
	m, err := NewModel(ModelSpec{Kind: KindLinear}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	theta := []float64{2, -1, 0.5} // w, b
	tab := &Table{Features: 2, X: []float64{3, 4}, Y: []float64{1}}
	out := make([]float64, 1)
	m.Predict(theta, tab.Row(0), out)
	if out[0] != 2.5 {
		t.Errorf("Predict = %v, want 2*3 - 4 + 0.5 = 2.5", out[0])
	}
	grad := make([]float64, 3)
	if loss := m.LossGrad(theta, tab, []int{0}, grad); loss != 2.25 {
		t.Errorf("loss %v, want (2.5-1)² = 2.25", loss)
	}
	if want := []float64{9, 12, 3}; relErr(grad, want) != 0 {
		t.Errorf("grad %v, want 2(ŷ-y)[x,1] = %v", grad, want)
	}
}

func TestLogisticStableAtExtremes(t *testing.T) {
	m, _ := NewModel(ModelSpec{Kind: KindLogistic}, 1, 2)
	tab := &Table{Features: 1, X: []float64{1, 1}, Y: []float64{0, 1}}
	grad := make([]float64, 2)
	for _, w := range []float64{-1000, 1000} {
		loss := m.LossGrad([]float64{w, 0}, tab, []int{0, 1}, grad)
		if math.Abs(loss-1000) > 1e-9 {
			t.Errorf("w = %v: loss %v, want 1000 (one row right, one wrong by a logit of 1000)", w, loss)
		}
	}
}

func TestNewModelErrors(t *testing.T) {
	for _, c := range []struct {
		spec     ModelSpec
		features int
		classes  int
		want     string
	}{
		{ModelSpec{Kind: "tree"}, 3, 0, `unknown kind "tree"`},
		{ModelSpec{Kind: KindSoftmax}, 3, 1, "softmax with 1 classes"},
		{ModelSpec{Kind: KindMLP, Output: TaskBinary}, 3, 2, "mlp without hidden layers"},
		{ModelSpec{Kind: KindMLP, Hidden: []int{4}, Activation: "sigmoid", Output: TaskBinary}, 3, 2, `activation "sigmoid"`},
		{ModelSpec{Kind: KindMLP, Hidden: []int{4, 0}, Output: TaskBinary}, 3, 2, "hidden layer 2 has 0 units"},
		{ModelSpec{Kind: KindMLP, Hidden: []int{4}}, 3, 2, `mlp output ""`},
		{ModelSpec{Kind: KindLogistic}, 3, 5, "use softmax"},
		{ModelSpec{Kind: KindLinear, Hidden: []int{3}}, 3, 0, "only mlp has hidden layers"},
		{ModelSpec{Kind: KindLinear}, 0, 0, "0 features"},
		{ModelSpec{Kind: KindLinear, L2: -1}, 3, 0, "l2 -1"},
		{ModelSpec{Kind: KindLinear, Output: TaskBinary}, 3, 0, `linear with output "binary"`},
	} {
		_, err := NewModel(c.spec, c.features, c.classes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewModel(%+v, %d, %d) = %v, want an error containing %q", c.spec, c.features, c.classes, err, c.want)
		}
	}
}

func TestShapeRoundTrip(t *testing.T) {
	for i, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			m, tab := newTestModel(t, i)
			theta := randTheta(m, 3)
			data, err := json.Marshal(m.Shape())
			if err != nil {
				t.Fatal(err)
			}
			var s Shape
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			m2, err := LoadModel(s, theta)
			if err != nil {
				t.Fatalf("LoadModel(%s): %v", data, err)
			}
			a, b := make([]float64, m.Outputs()), make([]float64, m2.Outputs())
			m.Predict(theta, tab.Row(1), a)
			m2.Predict(theta, tab.Row(1), b)
			if relErr(a, b) != 0 {
				t.Errorf("predictions differ after a round trip of %s: %v, %v", data, a, b)
			}
			if _, err := LoadModel(s, theta[1:]); err == nil {
				t.Error("LoadModel accepted a θ one element short")
			}
		})
	}
}

func BenchmarkLossGrad(b *testing.B) {
	for _, c := range []struct {
		name string
		spec ModelSpec
	}{
		{"logistic", ModelSpec{Kind: KindLogistic}},
		{"mlp64", ModelSpec{Kind: KindMLP, Hidden: []int{64}, Output: TaskBinary}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m, err := NewModel(c.spec, 100, 2)
			if err != nil {
				b.Fatal(err)
			}
			tab := randTable(1, 1000, 100, TaskBinary, 2)
			theta, rows := randTheta(m, 1), allRows(tab.Len())
			grad := make([]float64, m.NumParams())
			b.ReportAllocs()
			for b.Loop() {
				m.LossGrad(theta, tab, rows, grad)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
		})
	}
}
