package train

import "math"

// Classification scores, with scikit-learn's definitions (precision_score,
// recall_score, f1_score, roc_auc_score, confusion_matrix), computed from
// counts that nodes allreduce: every number below is an integer count summed
// over nodes, so the scores are the same for any number of nodes.
const (
	// MaxConfusionClasses bounds the classes for which Evaluate counts the
	// full confusion matrix (K² counts). With more, ClassReport.Confusion is
	// nil; the per-class scores are still computed (from 3K counts).
	MaxConfusionClasses = 64
	// AUCBins is the number of score bins of the ROC AUC histogram.
	AUCBins = 4096
	// AUCLogitRange: the bins cut the logit of P(y=1), log(p/(1-p)), into
	// AUCBins equal widths over [-AUCLogitRange, AUCLogitRange] (width
	// ≈0.0098); scores beyond fall into the end bins.
	AUCLogitRange = 20
)

// ClassReport is the per-class view of a classification evaluation, for
// classes 0..K-1 (the model's classes; for binary, label 0 and label 1).
//
// Precision_c = TP_c/(TP_c+FP_c) and Recall_c = TP_c/Support_c are 0 when
// their denominator is 0 (scikit-learn's zero_division=0), and
// F1_c = 2TP_c/(2TP_c+FP_c+FN_c) likewise. MacroF1 is the mean F1 over the
// classes that occur in the labels or the predictions (scikit-learn's
// average="macro" without labels=).
//
// AUC, for two classes, is the area under the ROC curve of the score
// P(y=1): the probability that a random positive row scores above a random
// negative one, ties counting one half. It is computed from a histogram of
// the scores (AUCBins bins of the logit, see AUCLogitRange), so a positive
// and a negative row whose scores fall into the same bin count as a tie:
// the result is exact when no bin holds both, and otherwise it differs from
// the exact AUC by less than half the fraction of positive-negative pairs
// that share a bin. nil when there are more than two classes, or when the
// rows hold only one of the two (scikit-learn raises an error there).
type ClassReport struct {
	Precision []float64 `json:"precision"`
	Recall    []float64 `json:"recall"`
	F1        []float64 `json:"f1"`
	Support   []int     `json:"support"` // rows of each class
	MacroF1   float64   `json:"macro_f1"`
	AUC       *float64  `json:"auc,omitempty"`
	// Confusion[t][p] counts the rows of class t predicted as p; nil above
	// MaxConfusionClasses classes.
	Confusion [][]int `json:"confusion,omitempty"`
}

// classLayout says where the counts of a K-class evaluation sit in
// Evaluate's sums: [loss, correct, TP (K), predicted (K), support (K),
// confusion (K×K, row-major by true class; only up to MaxConfusionClasses),
// AUC histogram of the positives then of the negatives (AUCBins each; only
// for K = 2), n].
type classLayout struct {
	k                      int
	tp, pred, support      int
	conf, pos, neg, length int // conf, pos, neg: -1 when absent
}

func layoutOf(k int) classLayout {
	l := classLayout{k: k, tp: 2, pred: 2 + k, support: 2 + 2*k, conf: -1, pos: -1, neg: -1}
	next := 2 + 3*k
	if k <= MaxConfusionClasses {
		l.conf, next = next, next+k*k
	}
	if k == 2 {
		l.pos, l.neg, next = next, next+AUCBins, next+2*AUCBins
	}
	l.length = next + 1
	return l
}

// add counts one row of class y whose prediction is pred.
func (l classLayout) add(out []float64, y int, pred []float64) {
	p := predictedClass(pred)
	if p == y {
		out[1]++
		out[l.tp+y]++
	}
	out[l.pred+p]++
	out[l.support+y]++
	if l.conf >= 0 {
		out[l.conf+y*l.k+p]++
	}
	if l.pos >= 0 {
		b := aucBin(pred[len(pred)-1]) // P(y=1): the sigmoid's output, or the softmax's second
		if y == 1 {
			out[l.pos+b]++
		} else {
			out[l.neg+b]++
		}
	}
}

// aucBin returns the histogram bin of the score p = P(y=1).
func aucBin(p float64) int {
	z := math.Log(p) - math.Log1p(-p) // ±Inf for p = 0 or 1
	switch {
	case !(z > -AUCLogitRange): // also NaN
		return 0
	case z >= AUCLogitRange:
		return AUCBins - 1
	}
	return min(int((z+AUCLogitRange)*(float64(AUCBins)/(2*AUCLogitRange))), AUCBins-1)
}

// report finishes the counts in sums.
func (l classLayout) report(sums []float64) *ClassReport {
	k := l.k
	r := &ClassReport{Precision: make([]float64, k), Recall: make([]float64, k), F1: make([]float64, k), Support: make([]int, k)}
	var f1Sum float64
	var seen int
	for c := range k {
		tp, pred, sup := sums[l.tp+c], sums[l.pred+c], sums[l.support+c]
		r.Support[c] = int(sup)
		fp, fn := pred-tp, sup-tp
		if pred > 0 {
			r.Precision[c] = tp / pred
		}
		if sup > 0 {
			r.Recall[c] = tp / sup
		}
		if tp > 0 {
			r.F1[c] = 2 * tp / (2*tp + fp + fn)
		}
		if pred > 0 || sup > 0 {
			f1Sum += r.F1[c]
			seen++
		}
	}
	if seen > 0 {
		r.MacroF1 = f1Sum / float64(seen)
	}
	if l.conf >= 0 {
		r.Confusion = make([][]int, k)
		for t := range k {
			r.Confusion[t] = make([]int, k)
			for p := range k {
				r.Confusion[t][p] = int(sums[l.conf+t*k+p])
			}
		}
	}
	if l.pos >= 0 {
		r.AUC = histogramAUC(sums[l.pos:l.pos+AUCBins], sums[l.neg:l.neg+AUCBins])
	}
	return r
}

// histogramAUC returns the ROC AUC of score histograms of the positive and
// the negative rows (bins in increasing score), a shared bin counting as a
// tie; nil if either class has no rows.
func histogramAUC(pos, neg []float64) *float64 {
	var below, area, np, nn float64
	for b := range pos {
		area += pos[b] * (below + neg[b]/2)
		below += neg[b]
		np += pos[b]
	}
	nn = below
	if np == 0 || nn == 0 {
		return nil
	}
	auc := area / (np * nn)
	return &auc
}
