package train

import (
	"fmt"
	"math"
)

// BalancedWeights returns scikit-learn's "balanced" class weights for the
// class counts of the whole training set: w_c = N / (K × count_c), with N
// the number of rows and K the number of classes that have rows. A class
// without rows gets weight 1 (no training row has it, so it changes
// nothing).
//
//	w := train.BalancedWeights([]float64{90, 10}) // [0.5556 5]
func BalancedWeights(counts []float64) []float64 {
	var n, k float64
	for _, c := range counts {
		if c > 0 {
			n += c
			k++
		}
	}
	w := make([]float64, len(counts))
	for i, c := range counts {
		w[i] = 1
		if c > 0 {
			w[i] = n / (k * c)
		}
	}
	return w
}

// checkClassWeight checks ModelSpec.ClassWeight for a model of task with
// classes classes.
func checkClassWeight(w []float64, task string, classes int) error {
	switch {
	case w == nil:
		return nil
	case task == TaskRegression:
		return fmt.Errorf("model: class weights on a regression model: they apply to classification only")
	case len(w) != classes:
		return fmt.Errorf("model: %d class weights for %d classes", len(w), classes)
	}
	for c, x := range w {
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("model: the weight of class %d is %v: want a positive finite number", c, x)
		}
	}
	return nil
}
