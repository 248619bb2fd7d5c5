package train

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// Softmax regression is a network without hidden layers whose K outputs z
// feed the softmax head: P(y=k) = exp(z_k - LSE(z)), per-row loss the
// cross-entropy LSE(z) - z_y with a stable log-sum-exp. Its derivative is
// P(y=k) - [k == y].

// crossEntropyLossGrad returns the cross-entropy of logits z for class y and
// writes its derivative into dz.
func crossEntropyLossGrad(z []float64, y float64, dz []float64) float64 {
	lse := floats.LogSumExp(z)
	for k, zk := range z {
		dz[k] = math.Exp(zk - lse)
	}
	c := int(y)
	dz[c]--
	return lse - z[c]
}

// softmax writes the class probabilities of logits z into out.
func softmax(z, out []float64) {
	lse := floats.LogSumExp(z)
	for k, zk := range z {
		out[k] = math.Exp(zk - lse)
	}
}
