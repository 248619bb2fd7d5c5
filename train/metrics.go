package train

import "fmt"

// Metrics are the scores of a model on a data set. Loss is the mean per-row
// loss (the training objective without L2 and without class weights).
// Regression fills MSE and R2, classification fills Accuracy and Class.
type Metrics struct {
	N        int          // rows evaluated
	Loss     float64      // mean per-row loss
	MSE      float64      // regression: mean squared error
	R2       float64      // regression: 1 - SSE/SST
	Accuracy float64      // classification: fraction of rows predicted right
	Class    *ClassReport // classification: per-class scores, macro-F1, AUC, confusion matrix (see ClassReport)
}

// EvalLen returns the length of Evaluate's sums for m: 5 for regression
// [loss, SSE, Σy, Σy², n]; for classification with K classes
// [loss, correct, class counts (see classLayout), n].
func EvalLen(m Model) int {
	if m.Task() == TaskRegression {
		return 5
	}
	return layoutOf(m.numClasses()).length
}

// Evaluate adds into out (EvalLen(m) long) the sums of m's scores over all
// rows of t. Sum them over tables and nodes (allreduce), then call Finish.
// Every classification sum is a count, so the finished classification
// scores (all but the loss) do not depend on how the rows were spread.
//
//	sums := make([]float64, train.EvalLen(m))
//	for _, t := range tables {
//		train.Evaluate(m, theta, t, sums)
//	}
//	// allreduce sums
//	fmt.Println(train.Finish(m, sums).Accuracy)
func Evaluate(m Model, theta []float64, t *Table, out []float64) {
	if len(out) != EvalLen(m) {
		panic(fmt.Sprintf("train: Evaluate: out has %d elements, want %d", len(out), EvalLen(m)))
	}
	pred := make([]float64, m.Outputs())
	buf := make([]float64, t.Features)
	regression := m.Task() == TaskRegression
	lay := layoutOf(m.numClasses())
	for i := range t.Len() {
		y := t.Y[i]
		out[0] += m.evalRow(theta, t.RowTo(i, buf), y, pred)
		if regression {
			d := pred[0] - y
			out[1] += d * d
			out[2] += y
			out[3] += y * y
			continue
		}
		lay.add(out, int(y), pred)
	}
	out[len(out)-1] += float64(t.Len())
}

// predictedClass returns the most probable class of a prediction: P(1) > 0.5
// for binary, argmax for multiclass.
func predictedClass(pred []float64) int {
	if len(pred) == 1 {
		if pred[0] > 0.5 {
			return 1
		}
		return 0
	}
	best := 0
	for k, p := range pred {
		if p > pred[best] {
			best = k
		}
	}
	return best
}

// Finish turns summed Evaluate sums into Metrics. With no rows every score is
// 0. R2 is 1 - SSE/SST with SST = Σy² - (Σy)²/n; when SST is 0 it is 1 for a
// perfect fit and 0 otherwise. Classification scores: see ClassReport.
func Finish(m Model, sums []float64) Metrics {
	if len(sums) != EvalLen(m) {
		panic(fmt.Sprintf("train: Finish: %d sums, want %d", len(sums), EvalLen(m)))
	}
	n := sums[len(sums)-1]
	if n <= 0 {
		return Metrics{}
	}
	r := Metrics{N: int(n), Loss: sums[0] / n}
	if m.Task() != TaskRegression {
		r.Accuracy = sums[1] / n
		r.Class = layoutOf(m.numClasses()).report(sums)
		return r
	}
	sse, sy, syy := sums[1], sums[2], sums[3]
	r.MSE = sse / n
	sst := syy - sy*sy/n
	switch {
	case sst > 0:
		r.R2 = 1 - sse/sst
	case sse == 0:
		r.R2 = 1
	}
	return r
}
