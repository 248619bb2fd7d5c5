package train

// A head turns the output layer's pre-activations z into a prediction, a
// per-row loss and dloss/dz. Each model kind is a network whose last layer
// feeds one head: linear (squared error, linear.go), logistic (sigmoid and
// binary cross-entropy, logistic.go), softmax (softmax and cross-entropy,
// softmax.go); an mlp picks one by its Output.
type head uint8

const (
	headSquared head = iota
	headSigmoid
	headSoftmax
)

func headOf(task string) head {
	switch task {
	case TaskBinary:
		return headSigmoid
	case TaskMulticlass:
		return headSoftmax
	}
	return headSquared
}

// lossGrad writes dloss/dz into dz and returns the loss of a row with label y.
func (h head) lossGrad(z []float64, y float64, dz []float64) float64 {
	switch h {
	case headSigmoid:
		return bceLossGrad(z[0], y, dz)
	case headSoftmax:
		return crossEntropyLossGrad(z, y, dz)
	}
	return squaredLossGrad(z[0], y, dz)
}

// predict writes the prediction for pre-activations z into out.
func (h head) predict(z, out []float64) {
	switch h {
	case headSigmoid:
		out[0] = sigmoid(z[0])
	case headSoftmax:
		softmax(z, out)
	default:
		out[0] = z[0]
	}
}
