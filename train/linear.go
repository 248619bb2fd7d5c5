package train

// Linear regression is a network without hidden layers whose output feeds the
// squared-error head: ŷ = w·x + b, per-row loss (ŷ-y)². The mean over n rows
// is the MSE, and its gradient is (2/n)Xᵀ(Xθ-y).

// squaredLossGrad returns (z-y)² and writes its derivative 2(z-y) into dz[0].
func squaredLossGrad(z, y float64, dz []float64) float64 {
	d := z - y
	dz[0] = 2 * d
	return d * d
}
