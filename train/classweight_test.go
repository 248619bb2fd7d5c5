package train

import (
	"math"
	"strings"
	"testing"
)

// TestClassWeightScalesEachRow: with class weights, LossGrad equals a dumb
// loop over the rows that weighs each row's unweighted loss and gradient by
// its class's weight, for every classification model.
func TestClassWeightScalesEachRow(t *testing.T) {
	for i, c := range modelCases {
		if c.classes == 0 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			plain, tab := newTestModel(t, i)
			w := make([]float64, c.classes)
			for k := range w {
				w[k] = 0.5 + 1.75*float64(k) // 0.5, 2.25, 4, ...
			}
			spec := c.spec
			spec.ClassWeight = w
			weighted, err := NewModel(spec, tab.Features, c.classes)
			if err != nil {
				t.Fatal(err)
			}
			theta := randTheta(plain, uint64(i))
			P := plain.NumParams()

			wantGrad, one := make([]float64, P), make([]float64, P)
			var wantLoss float64
			for r := range tab.Len() {
				clear(one)
				loss := plain.LossGrad(theta, tab, []int{r}, one)
				cw := w[int(tab.Y[r])]
				wantLoss += cw * loss
				for j := range one {
					wantGrad[j] += cw * one[j]
				}
			}
			grad, rows := make([]float64, P), allRows(tab.Len())
			loss := weighted.LossGrad(theta, tab, rows, grad)
			if e := relErr(grad, wantGrad); e > 1e-12 {
				t.Errorf("weighted gradient differs from the per-row reference by %.3g", e)
			}
			if math.Abs(loss-wantLoss) > 1e-12*math.Abs(wantLoss) {
				t.Errorf("weighted loss %v, reference %v", loss, wantLoss)
			}
			if n := testing.AllocsPerRun(20, func() { weighted.LossGrad(theta, tab, rows, grad) }); n != 0 {
				t.Errorf("weighted LossGrad: %v allocations per run", n)
			}
		})
	}
}

// TestBalancedWeights checks scikit-learn's formula n/(K·count_c), with K
// counting the classes that have rows.
func TestBalancedWeights(t *testing.T) {
	for _, c := range []struct {
		counts, want []float64
	}{
		{[]float64{90, 10}, []float64{100.0 / 180, 100.0 / 20}},
		{[]float64{5, 5}, []float64{1, 1}},
		{[]float64{6, 2, 0, 4}, []float64{12.0 / 18, 12.0 / 6, 1, 12.0 / 12}}, // class 2 has no rows: K = 3
		{[]float64{1, 2, 3, 4}, []float64{10.0 / 4, 10.0 / 8, 10.0 / 12, 10.0 / 16}},
	} {
		got := BalancedWeights(c.counts)
		if relErr(got, c.want) > 1e-15 {
			t.Errorf("BalancedWeights(%v) = %v, want %v", c.counts, got, c.want)
		}
		var sum float64 // the weights of all rows add up to the number of rows
		var n float64
		for k, x := range c.counts {
			sum += x * got[k]
			n += x
		}
		if math.Abs(sum-n) > 1e-12 {
			t.Errorf("BalancedWeights(%v): rows weigh %v in all, want %v", c.counts, sum, n)
		}
	}
}

func TestClassWeightErrors(t *testing.T) {
	for _, c := range []struct {
		spec    ModelSpec
		classes int
		want    string
	}{
		{ModelSpec{Kind: KindLinear, ClassWeight: []float64{1, 2}}, 0, "regression"},
		{ModelSpec{Kind: KindMLP, Hidden: []int{3}, Output: TaskRegression, ClassWeight: []float64{1}}, 0, "regression"},
		{ModelSpec{Kind: KindLogistic, ClassWeight: []float64{1, 2, 3}}, 2, "3 class weights for 2 classes"},
		{ModelSpec{Kind: KindSoftmax, ClassWeight: []float64{1, 0, 3}}, 3, "class 1 is 0"},
		{ModelSpec{Kind: KindSoftmax, ClassWeight: []float64{1, 1, -2}}, 3, "class 2 is -2"},
		{ModelSpec{Kind: KindLogistic, ClassWeight: []float64{math.Inf(1), 1}}, 2, "class 0 is +Inf"},
		{ModelSpec{Kind: KindLogistic, ClassWeight: []float64{1, math.NaN()}}, 2, "class 1 is NaN"},
	} {
		_, err := NewModel(c.spec, 3, c.classes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one containing %q", c.spec.Kind, c.spec.ClassWeight, err, c.want)
		}
	}
}
