package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// oneHot returns a softmax model over k one-hot features whose prediction is
// the feature that is set, and a table with confusion[t][p] rows of class t
// predicted as p.
func oneHot(t *testing.T, confusion [][]int) (Model, []float64, *Table) {
	t.Helper()
	k := len(confusion)
	m, err := NewModel(ModelSpec{Kind: KindSoftmax}, k, k)
	if err != nil {
		t.Fatal(err)
	}
	theta := make([]float64, m.NumParams()) // W = 10 I, b = 0
	for c := range k {
		theta[c*k+c] = 10
	}
	tab := &Table{Features: k}
	for tc, row := range confusion {
		for p, n := range row {
			for range n {
				x := make([]float64, k)
				x[p] = 1
				tab.X = append(tab.X, x...)
				tab.Y = append(tab.Y, float64(tc))
			}
		}
	}
	return m, theta, tab
}

func near(a, b []float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestClassReportKnownMatrices checks precision, recall, F1, macro-F1 and the
// confusion matrix against values computed by hand with scikit-learn's
// definitions.
func TestClassReportKnownMatrices(t *testing.T) {
	for _, c := range []struct {
		name                  string
		confusion             [][]int
		precision, recall, f1 []float64
		macroF1, accuracy     float64
	}{
		{
			// scikit-learn's doc example: y_true = [0 1 2 0 1 2], y_pred = [0 2 1 0 0 1].
			name:      "sklearn doc",
			confusion: [][]int{{2, 0, 0}, {1, 0, 1}, {0, 2, 0}},
			precision: []float64{2.0 / 3, 0, 0}, recall: []float64{1, 0, 0}, f1: []float64{0.8, 0, 0},
			macroF1: 0.8 / 3, accuracy: 2.0 / 6,
		},
		{
			// TP/FP/FN: class 0: 5/2/1, class 1: 3/1/2, class 2: 4/1/1.
			name:      "three classes",
			confusion: [][]int{{5, 1, 0}, {1, 3, 1}, {1, 0, 4}},
			precision: []float64{5.0 / 7, 3.0 / 4, 4.0 / 5}, recall: []float64{5.0 / 6, 3.0 / 5, 4.0 / 5},
			f1:      []float64{10.0 / 13, 6.0 / 9, 8.0 / 10},
			macroF1: (10.0/13 + 6.0/9 + 8.0/10) / 3, accuracy: 12.0 / 16,
		},
		{
			// Class 3 is neither in the labels nor predicted: macro-F1 leaves it
			// out. Class 2 is predicted but never true: precision 0, F1 0.
			name:      "absent classes",
			confusion: [][]int{{4, 0, 1, 0}, {0, 2, 1, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
			precision: []float64{1, 1, 0, 0}, recall: []float64{4.0 / 5, 2.0 / 3, 0, 0},
			f1:      []float64{8.0 / 9, 4.0 / 5, 0, 0},
			macroF1: (8.0/9 + 4.0/5 + 0) / 3, accuracy: 6.0 / 8,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, theta, tab := oneHot(t, c.confusion)
			sums := make([]float64, EvalLen(m))
			Evaluate(m, theta, tab, sums)
			got := Finish(m, sums)
			r := got.Class
			if r == nil {
				t.Fatal("no class report")
			}
			if !reflect.DeepEqual(r.Confusion, c.confusion) {
				t.Errorf("confusion %v, want %v", r.Confusion, c.confusion)
			}
			if !near(r.Precision, c.precision) || !near(r.Recall, c.recall) || !near(r.F1, c.f1) {
				t.Errorf("precision %v recall %v f1 %v, want %v %v %v", r.Precision, r.Recall, r.F1, c.precision, c.recall, c.f1)
			}
			if math.Abs(r.MacroF1-c.macroF1) > 1e-12 || math.Abs(got.Accuracy-c.accuracy) > 1e-12 {
				t.Errorf("macro-F1 %v accuracy %v, want %v %v", r.MacroF1, got.Accuracy, c.macroF1, c.accuracy)
			}
			for k, row := range c.confusion {
				sup := 0
				for _, n := range row {
					sup += n
				}
				if r.Support[k] != sup {
					t.Errorf("support of class %d: %d, want %d", k, r.Support[k], sup)
				}
			}
			if r.AUC != nil {
				t.Errorf("AUC %v for %d classes", *r.AUC, len(c.confusion))
			}
		})
	}
}

// naiveAUC is the ROC AUC by its definition: over all positive-negative
// pairs, 1 if the positive scores higher, 1/2 for a tie.
func naiveAUC(scores []float64, y []float64) float64 {
	var s, pairs float64
	for i := range scores {
		for j := range scores {
			if y[i] != 1 || y[j] != 0 {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				s++
			case scores[i] == scores[j]:
				s += 0.5
			}
		}
	}
	return s / pairs
}

// logisticScores returns a logistic model on one feature whose P(y=1) for
// each row is the given score, and its table.
func logisticScores(t *testing.T, scores, y []float64) (Model, []float64, *Table) {
	t.Helper()
	m, err := NewModel(ModelSpec{Kind: KindLogistic}, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	tab := &Table{Features: 1, Y: y}
	for _, p := range scores {
		tab.X = append(tab.X, math.Log(p/(1-p)))
	}
	return m, []float64{1, 0}, tab
}

func TestAUC(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var rs, ry []float64
	for range 300 {
		y := float64(r.IntN(2))
		rs, ry = append(rs, 1/(1+math.Exp(-(1.5*y-0.75+r.NormFloat64())))), append(ry, y)
	}
	for _, c := range []struct {
		name      string
		scores, y []float64
		want      float64
		tol       float64
	}{
		// roc_auc_score's doc example.
		{"sklearn doc", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75, 1e-15},
		{"perfect", []float64{0.01, 0.2, 0.7, 0.99}, []float64{0, 0, 1, 1}, 1, 0},
		{"reversed", []float64{0.01, 0.2, 0.7, 0.99}, []float64{1, 1, 0, 0}, 0, 0},
		// Equal scores are ties, one half: (1 + 0.5 + 1 + 1) / 4.
		{"ties", []float64{0.3, 0.6, 0.6, 0.9}, []float64{0, 0, 1, 1}, 0.875, 1e-15},
		// Scores beyond the logit range share an end bin and count as a
		// tie: 2.5/4, where the exact AUC is 2/4 (the approximation).
		{"saturated", []float64{1e-12, 1e-13, 1 - 1e-12, 0.5}, []float64{0, 1, 1, 0}, 0.625, 1e-15},
		{"random", rs, ry, naiveAUC(rs, ry), 2e-3},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, theta, tab := logisticScores(t, c.scores, c.y)
			sums := make([]float64, EvalLen(m))
			Evaluate(m, theta, tab, sums)
			rep := Finish(m, sums).Class
			if rep.AUC == nil {
				t.Fatal("no AUC")
			}
			if math.Abs(*rep.AUC-c.want) > c.tol {
				t.Errorf("AUC %v, want %v (±%g)", *rep.AUC, c.want, c.tol)
			}
		})
	}
	// Scores of exactly 0 and 1 (a saturated sigmoid: logits ±Inf) and NaN
	// fall into the end bins.
	for _, p := range []float64{0, 1, math.NaN(), math.SmallestNonzeroFloat64, 1 - 0x1p-53} {
		if b := aucBin(p); b < 0 || b >= AUCBins {
			t.Errorf("aucBin(%v) = %d", p, b)
		}
	}
	if aucBin(0) != 0 || aucBin(1) != AUCBins-1 || aucBin(0.5) != AUCBins/2 {
		t.Errorf("aucBin: 0 in %d, 1 in %d, 0.5 in %d", aucBin(0), aucBin(1), aucBin(0.5))
	}
	// With one class only, AUC is undefined.
	m, theta, tab := logisticScores(t, []float64{0.2, 0.7}, []float64{1, 1})
	sums := make([]float64, EvalLen(m))
	Evaluate(m, theta, tab, sums)
	if rep := Finish(m, sums).Class; rep.AUC != nil {
		t.Errorf("AUC %v with positives only, want none", *rep.AUC)
	}
}

// TestAUCTwoClassSoftmax: a softmax over two classes scores by P(y=1), like
// the logistic model with the same logit.
func TestAUCTwoClassSoftmax(t *testing.T) {
	scores, y := []float64{0.1, 0.4, 0.35, 0.8, 0.55}, []float64{0, 0, 1, 1, 0}
	lm, lt, tab := logisticScores(t, scores, y)
	sm, err := NewModel(ModelSpec{Kind: KindSoftmax}, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	st := []float64{0, 1, 0, 0} // z = (0, x): P(1) = σ(x)
	a, b := make([]float64, EvalLen(lm)), make([]float64, EvalLen(sm))
	Evaluate(lm, lt, tab, a)
	Evaluate(sm, st, tab, b)
	ra, rb := Finish(lm, a).Class, Finish(sm, b).Class
	if rb.AUC == nil || *ra.AUC != *rb.AUC || *ra.AUC != naiveAUC(scores, y) {
		t.Errorf("AUC logistic %v, softmax %v, naive %v", ra.AUC, rb.AUC, naiveAUC(scores, y))
	}
	if !reflect.DeepEqual(ra.Confusion, rb.Confusion) {
		t.Errorf("confusion logistic %v, softmax %v", ra.Confusion, rb.Confusion)
	}
}

// TestClassReportManyClasses: above MaxConfusionClasses there is no
// confusion matrix, and the per-class scores equal a naive count.
func TestClassReportManyClasses(t *testing.T) {
	k := MaxConfusionClasses + 6
	r := rand.New(rand.NewPCG(8, 9))
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
		for range 3 {
			conf[i][r.IntN(k)] += 1 + r.IntN(3)
		}
	}
	m, theta, tab := oneHot(t, conf)
	sums := make([]float64, EvalLen(m))
	Evaluate(m, theta, tab, sums)
	rep := Finish(m, sums).Class
	if rep.Confusion != nil {
		t.Errorf("a confusion matrix for %d classes", k)
	}
	var f1s float64
	var seen int
	for c := range k {
		var tp, pred, sup float64
		for i := range k {
			pred += float64(conf[i][c])
			sup += float64(conf[c][i])
		}
		tp = float64(conf[c][c])
		var p, rc, f float64
		if pred > 0 {
			p = tp / pred
		}
		if sup > 0 {
			rc = tp / sup
		}
		if p+rc > 0 {
			f = 2 * p * rc / (p + rc)
		}
		if pred+sup > 0 {
			f1s += f
			seen++
		}
		if math.Abs(rep.Precision[c]-p) > 1e-12 || math.Abs(rep.Recall[c]-rc) > 1e-12 || math.Abs(rep.F1[c]-f) > 1e-12 {
			t.Fatalf("class %d: %v %v %v, want %v %v %v", c, rep.Precision[c], rep.Recall[c], rep.F1[c], p, rc, f)
		}
	}
	if math.Abs(rep.MacroF1-f1s/float64(seen)) > 1e-12 {
		t.Errorf("macro-F1 %v, want %v", rep.MacroF1, f1s/float64(seen))
	}
}

// TestClassCountsAddUp: the sums of parts of a table, added, finish like
// the sums of the whole table (what the allreduce relies on).
func TestClassCountsAddUp(t *testing.T) {
	for _, k := range []int{2, 3} {
		t.Run(fmt.Sprint(k, " classes"), func(t *testing.T) {
			m, _ := NewModel(ModelSpec{Kind: KindSoftmax}, 4, k)
			tab := randTable(uint64(k), 40, 4, TaskMulticlass, k)
			theta := randTheta(m, 1)
			all := make([]float64, EvalLen(m))
			Evaluate(m, theta, tab, all)
			parts := make([]float64, EvalLen(m))
			for lo := 0; lo < 40; lo += 13 {
				hi := min(lo+13, 40)
				Evaluate(m, theta, &Table{Features: 4, X: tab.X[lo*4 : hi*4], Y: tab.Y[lo:hi]}, parts)
			}
			a, b := Finish(m, all), Finish(m, parts)
			a.Loss, b.Loss = 0, 0 // a float sum: its order differs
			if !reflect.DeepEqual(a, b) {
				t.Errorf("parts %+v, whole %+v", b.Class, a.Class)
			}
		})
	}
}
