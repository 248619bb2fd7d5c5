package train

import (
	"fmt"
	"math"
	"slices"
)

// Model kinds: the values of ModelSpec.Kind.
const (
	KindLinear   = "linear"   // least squares: per-row loss (ŷ-y)²
	KindLogistic = "logistic" // binary cross-entropy on a sigmoid
	KindSoftmax  = "softmax"  // cross-entropy on a softmax over K classes
	KindMLP      = "mlp"      // hidden layers, then one of the three heads
)

// Activations of MLP hidden layers: the values of ModelSpec.Activation.
const (
	ActReLU = "relu"
	ActTanh = "tanh"
)

// ModelSpec says which model to build.
type ModelSpec struct {
	Kind       string  // KindLinear, KindLogistic, KindSoftmax or KindMLP
	Hidden     []int   // mlp: units of each hidden layer, input side first
	Activation string  // mlp: ActReLU (the default) or ActTanh
	Output     string  // mlp: TaskRegression, TaskBinary or TaskMulticlass
	L2         float64 // λ of the penalty (λ/2)‖w‖² on the weights (not biases)
	Seed       uint64  // mlp: seeds the initial weights
	// ClassWeight, for classification, weighs each row's loss and gradient
	// by the weight of its class: ClassWeight[y] for label y (0..classes-1);
	// nil: every class weighs 1. LossGrad's sums are then Σ w[y_i] loss_i and
	// Σ w[y_i] ∇loss_i; dmlrun divides them by the batch's row count B, not
	// by Σ w[y_i] (as scikit-learn's SGDClassifier does). With
	// BalancedWeights the weights of all rows add up to their number, so the
	// two agree for a full batch. Evaluate reports the unweighted loss.
	ClassWeight []float64
}

// Model is a differentiable model over a flat parameter vector θ. The layout of
// θ, layer after layer from the input: the weights of the layer (out×in,
// row-major, one row per output unit), then its biases (out). Linear and
// logistic regression are θ = [w (F), b]; softmax is [W (K×F), b (K)].
//
// A Model keeps scratch buffers: it is not safe for concurrent use. Build one
// per goroutine. All models come from NewModel or LoadModel.
type Model interface {
	// Task returns TaskRegression, TaskBinary or TaskMulticlass.
	Task() string
	// NumParams returns P, the length of θ.
	NumParams() int
	// Outputs returns the length of Predict's out: 1, or K for multiclass.
	Outputs() int
	// Init writes the initial θ: zeros for linear, logistic and softmax; for
	// mlp, scaled normal weights drawn from ModelSpec.Seed, zero biases.
	Init(theta []float64)
	// LossGrad adds Σ_rows ∇loss_row(θ) into grad and returns Σ_rows loss_row
	// (no L2, no division by the count). rows are local indices into t,
	// summed in the given order. With ModelSpec.ClassWeight each row's loss
	// and gradient are multiplied by its class's weight. It does not
	// allocate.
	LossGrad(theta []float64, t *Table, rows []int, grad []float64) (lossSum float64)
	// Regularize adds λw into grad for every weight (not the biases) and
	// returns (λ/2)‖w‖².
	Regularize(theta, grad []float64) (penalty float64)
	// Predict writes the prediction for features x into out (Outputs long):
	// the value (regression), P(y=1) (binary) or class probabilities.
	Predict(theta, x, out []float64)
	// Shape describes the model for model.json; LoadModel rebuilds it.
	Shape() Shape

	// evalRow is Predict plus the row's loss (for Evaluate), unweighted.
	evalRow(theta, x []float64, y float64, out []float64) (loss float64)
	// numClasses returns the number of classes (0 for regression).
	numClasses() int
}

// Shape describes a model well enough to rebuild it for prediction. It is
// meant to be JSON-encoded into model.json beside θ.
type Shape struct {
	Kind       string `json:"kind"`
	Task       string `json:"task"`
	Features   int    `json:"features"`
	Classes    int    `json:"classes,omitempty"`
	Hidden     []int  `json:"hidden,omitempty"`
	Activation string `json:"activation,omitempty"`
	Layers     []int  `json:"layers"` // units per layer: input, hidden..., output
	Params     int    `json:"params"` // length of θ
}

// LoadModel rebuilds a model from its Shape and checks that θ fits it.
//
//	var saved struct { Shape train.Shape; Theta []float64 }
//	json.Unmarshal(data, &saved)
//	m, err := train.LoadModel(saved.Shape, saved.Theta)
//	m.Predict(saved.Theta, x, out)
func LoadModel(shape Shape, theta []float64) (Model, error) {
	// Check the sizes against θ before building anything: a hostile or
	// broken shape may claim billions of parameters.
	if len(shape.Layers) < 2 || len(shape.Layers) > 64 || shape.Layers[0] != shape.Features {
		return nil, fmt.Errorf("model: the shape's layers %v do not fit %d features", shape.Layers, shape.Features)
	}
	var params float64
	for l := 1; l < len(shape.Layers); l++ {
		in, out := shape.Layers[l-1], shape.Layers[l]
		if in < 1 || out < 1 {
			return nil, fmt.Errorf("model: layer %d has %d units", l, out)
		}
		params += float64(in+1) * float64(out)
	}
	if params != float64(len(theta)) || params != float64(shape.Params) {
		return nil, fmt.Errorf("model: the layers %v need %.0f parameters; the shape says %d and θ has %d", shape.Layers, params, shape.Params, len(theta))
	}
	if last := shape.Layers[len(shape.Layers)-1]; !slices.Equal(shape.Hidden, shape.Layers[1:len(shape.Layers)-1]) || shape.Classes > max(2, last) {
		return nil, fmt.Errorf("model: the shape's hidden layers %v and %d classes do not fit its layers %v", shape.Hidden, shape.Classes, shape.Layers)
	}
	spec := ModelSpec{Kind: shape.Kind, Hidden: shape.Hidden, Activation: shape.Activation}
	if shape.Kind == KindMLP {
		spec.Output = shape.Task
	}
	m, err := NewModel(spec, shape.Features, shape.Classes)
	if err != nil {
		return nil, err
	}
	if shape.Params != m.NumParams() || len(theta) != m.NumParams() {
		return nil, fmt.Errorf("model: %s has %d parameters; the shape says %d and θ has %d", shape.Kind, m.NumParams(), shape.Params, len(theta))
	}
	return m, nil
}

// NewModel builds the model of spec for data with features features and (for
// classification) classes classes; classes is ignored for regression.
//
//	m, err := train.NewModel(train.ModelSpec{Kind: train.KindSoftmax, L2: 1e-4}, t.Features, 3)
//	theta := make([]float64, m.NumParams())
//	m.Init(theta)
func NewModel(spec ModelSpec, features, classes int) (Model, error) {
	if features < 1 {
		return nil, fmt.Errorf("model: %d features: need at least 1", features)
	}
	if spec.L2 < 0 || math.IsNaN(spec.L2) || math.IsInf(spec.L2, 0) {
		return nil, fmt.Errorf("model: l2 %v: want a finite λ >= 0", spec.L2)
	}
	if spec.Kind != KindMLP {
		switch {
		case len(spec.Hidden) > 0:
			return nil, fmt.Errorf("model: %s with hidden layers %v: only mlp has hidden layers", spec.Kind, spec.Hidden)
		case spec.Activation != "":
			return nil, fmt.Errorf("model: %s with activation %q: only mlp has an activation", spec.Kind, spec.Activation)
		}
	}
	task := spec.Output
	switch spec.Kind {
	case KindLinear:
		task = TaskRegression
	case KindLogistic:
		task = TaskBinary
	case KindSoftmax:
		task = TaskMulticlass
	case KindMLP:
		if len(spec.Hidden) == 0 {
			return nil, fmt.Errorf("model: mlp without hidden layers: give hidden, e.g. [32] (or use kind linear, logistic or softmax)")
		}
		for i, h := range spec.Hidden {
			if h < 1 {
				return nil, fmt.Errorf("model: mlp hidden layer %d has %d units: need at least 1", i+1, h)
			}
		}
		switch spec.Activation {
		case "":
			spec.Activation = ActReLU
		case ActReLU, ActTanh:
		default:
			return nil, fmt.Errorf("model: activation %q: want %s or %s", spec.Activation, ActReLU, ActTanh)
		}
		if task != TaskRegression && task != TaskBinary && task != TaskMulticlass {
			return nil, fmt.Errorf("model: mlp output %q: want %s, %s or %s", task, TaskRegression, TaskBinary, TaskMulticlass)
		}
	default:
		return nil, fmt.Errorf("model: unknown kind %q: want %s, %s, %s or %s", spec.Kind, KindLinear, KindLogistic, KindSoftmax, KindMLP)
	}
	if spec.Kind != KindMLP && spec.Output != "" && spec.Output != task {
		return nil, fmt.Errorf("model: %s with output %q: %s is %s", spec.Kind, spec.Output, spec.Kind, task)
	}
	outputs := 1
	switch task {
	case TaskRegression:
		classes = 0
	case TaskBinary:
		if classes != 0 && classes != 2 {
			return nil, fmt.Errorf("model: %s is binary but there are %d classes: use softmax (or mlp output multiclass)", spec.Kind, classes)
		}
		classes = 2
	case TaskMulticlass:
		if classes < 2 {
			return nil, fmt.Errorf("model: %s with %d classes: need at least 2", spec.Kind, classes)
		}
		outputs = classes
	}
	if err := checkClassWeight(spec.ClassWeight, task, classes); err != nil {
		return nil, err
	}
	return newNetwork(spec, task, features, classes, outputs), nil
}
