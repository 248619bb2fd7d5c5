package train

import "math"

// Logistic regression is a network without hidden layers whose output z feeds
// the sigmoid head: P(y=1) = σ(z), per-row loss the binary cross-entropy
// -y log σ(z) - (1-y) log(1-σ(z)), computed without log(0) or overflow as
// max(z,0) - y z + log1p(exp(-|z|)). Its derivative is σ(z) - y.

// bceLossGrad returns the binary cross-entropy of logit z and label y and
// writes its derivative into dz[0].
func bceLossGrad(z, y float64, dz []float64) float64 {
	dz[0] = sigmoid(z) - y
	return max(z, 0) - y*z + math.Log1p(math.Exp(-math.Abs(z)))
}

// sigmoid returns 1/(1+exp(-z)) without overflow for either sign of z.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
