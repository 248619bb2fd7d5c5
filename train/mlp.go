package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"unsafe"

	"gonum.org/v1/gonum/floats"
)

// network is every model: dense layers, a relu or tanh after each hidden
// layer, and a head after the last layer. Linear, logistic and softmax are
// networks without hidden layers; an mlp has at least one.
type network struct {
	spec    ModelSpec
	task    string
	head    head
	classes int
	sizes   []int // units per layer: sizes[0] = features, the last = outputs
	off     []int // off[l] = offset in θ of layer l's weights (l >= 1); its biases follow them
	nparams int
	relu    bool
	act     [][]float64 // act[l]: output of layer l (l >= 1); the last holds the head's input z
	x       []float64   // a float32 row converted to float64
	delta   [][]float64 // delta[l]: dloss/d(pre-activation of layer l)
}

func newNetwork(spec ModelSpec, task string, features, classes, outputs int) *network {
	n := &network{spec: spec, task: task, head: headOf(task), classes: classes, relu: spec.Activation != ActTanh}
	n.sizes = append(append([]int{features}, spec.Hidden...), outputs)
	L := len(n.sizes) - 1
	n.off = make([]int, L+1)
	n.act = make([][]float64, L+1)
	n.delta = make([][]float64, L+1)
	n.x = make([]float64, features)
	for l := 1; l <= L; l++ {
		n.off[l] = n.nparams
		n.nparams += n.sizes[l]*n.sizes[l-1] + n.sizes[l]
		n.act[l] = make([]float64, n.sizes[l])
		n.delta[l] = make([]float64, n.sizes[l])
	}
	return n
}

func (n *network) Task() string   { return n.task }
func (n *network) NumParams() int { return n.nparams }
func (n *network) Outputs() int   { return n.sizes[len(n.sizes)-1] }

func (n *network) numClasses() int { return n.classes }

func (n *network) Shape() Shape {
	s := Shape{Kind: n.spec.Kind, Task: n.task, Features: n.sizes[0], Classes: n.classes,
		Layers: slices.Clone(n.sizes), Params: n.nparams}
	if n.spec.Kind == KindMLP {
		s.Hidden, s.Activation = slices.Clone(n.spec.Hidden), n.spec.Activation
	}
	return s
}

// layer returns the weights (out×in) and biases of layer l in θ.
func (n *network) layer(theta []float64, l int) (w, b []float64) {
	in, out := n.sizes[l-1], n.sizes[l]
	w = theta[n.off[l] : n.off[l]+out*in]
	return w, theta[n.off[l]+out*in : n.off[l]+out*in+out]
}

func (n *network) Init(theta []float64) {
	n.check("Init", theta, nil, nil)
	clear(theta)
	if n.spec.Kind != KindMLP {
		return
	}
	for l := 1; l < len(n.sizes); l++ {
		r := rand.New(rand.NewPCG(mix(n.spec.Seed^streamMLP), uint64(l)))
		scale := math.Sqrt(1 / float64(n.sizes[l-1])) // LeCun, for tanh and the output layer
		if n.relu && l < len(n.sizes)-1 {
			scale *= math.Sqrt2 // He, for relu
		}
		w, _ := n.layer(theta, l)
		for i := range w {
			w[i] = scale * r.NormFloat64()
		}
	}
}

// check panics with a clear message when slice lengths do not fit the model.
func (n *network) check(op string, theta, grad []float64, t *Table) {
	switch {
	case len(theta) != n.nparams:
		panic(fmt.Sprintf("train: %s: θ has %d elements, the %s model has %d parameters", op, len(theta), n.spec.Kind, n.nparams))
	case grad != nil && len(grad) != n.nparams:
		panic(fmt.Sprintf("train: %s: grad has %d elements, the %s model has %d parameters", op, len(grad), n.spec.Kind, n.nparams))
	case t != nil && t.Features != n.sizes[0]:
		panic(fmt.Sprintf("train: %s: %s has %d features, the model takes %d", op, t.Source, t.Features, n.sizes[0]))
	}
}

// forward runs the layers on x and leaves the head's input in the last act.
func (n *network) forward(theta, x []float64) []float64 {
	a := x
	last := len(n.sizes) - 1
	for l := 1; l <= last; l++ {
		w, b := n.layer(theta, l)
		in, z := len(a), n.act[l]
		for j := range z {
			z[j] = floats.Dot(w[j*in:(j+1)*in], a) + b[j]
		}
		if l < last {
			if n.relu {
				for j, v := range z {
					z[j] = max(v, 0)
				}
			} else {
				for j, v := range z {
					z[j] = math.Tanh(v)
				}
			}
		}
		a = z
	}
	return a
}

func (n *network) LossGrad(theta []float64, t *Table, rows []int, grad []float64) float64 {
	n.check("LossGrad", theta, grad, t)
	last := len(n.sizes) - 1
	var lossSum float64
	const ahead = 2 // rows prefetched ahead: batch rows are scattered over the table
	for i := 0; i < min(ahead, len(rows)); i++ {
		prefetchRow(t, rows[i])
	}
	for i, r := range rows {
		if i+ahead < len(rows) {
			prefetchRow(t, rows[i+ahead])
		}
		x := t.RowTo(r, n.x)
		z := n.forward(theta, x)
		loss := n.head.lossGrad(z, t.Y[r], n.delta[last])
		if w := n.spec.ClassWeight; w != nil { // the row's class weight scales its loss and dloss/dz
			c := w[int(t.Y[r])]
			loss *= c
			floats.Scale(c, n.delta[last])
		}
		lossSum += loss
		for l := last; l >= 1; l-- { // backpropagation
			w, _ := n.layer(theta, l)
			gw, gb := n.layer(grad, l)
			d, in := n.delta[l], n.sizes[l-1]
			a := x
			if l > 1 {
				a = n.act[l-1]
			}
			for j, dj := range d {
				floats.AddScaled(gw[j*in:(j+1)*in], dj, a)
				gb[j] += dj
			}
			if l == 1 {
				break
			}
			prev := n.delta[l-1]
			clear(prev)
			for j, dj := range d {
				floats.AddScaled(prev, dj, w[j*in:(j+1)*in])
			}
			for i, ai := range a { // times the activation's derivative
				if n.relu {
					if ai <= 0 {
						prev[i] = 0
					}
				} else {
					prev[i] *= 1 - ai*ai
				}
			}
		}
	}
	return lossSum
}

// prefetchRow starts loading local row i of t into cache.
func prefetchRow(t *Table, i int) {
	switch {
	case t.Features == 0:
	case t.X32 != nil:
		prefetch(unsafe.Pointer(&t.X32[i*t.Features]), t.Features*4)
	default:
		prefetch(unsafe.Pointer(&t.X[i*t.Features]), t.Features*8)
	}
}

func (n *network) Regularize(theta, grad []float64) float64 {
	n.check("Regularize", theta, grad, nil)
	if n.spec.L2 == 0 {
		return 0
	}
	var sq float64
	for l := 1; l < len(n.sizes); l++ {
		w, _ := n.layer(theta, l)
		gw, _ := n.layer(grad, l)
		for i, wi := range w {
			gw[i] += n.spec.L2 * wi
			sq += wi * wi
		}
	}
	return n.spec.L2 / 2 * sq
}

func (n *network) Predict(theta, x, out []float64) {
	n.check("Predict", theta, nil, nil)
	if len(x) != n.sizes[0] || len(out) < n.Outputs() {
		panic(fmt.Sprintf("train: Predict: %d features and %d outputs, the model has %d and %d", len(x), len(out), n.sizes[0], n.Outputs()))
	}
	n.head.predict(n.forward(theta, x), out)
}

func (n *network) evalRow(theta, x []float64, y float64, out []float64) float64 {
	z := n.forward(theta, x)
	n.head.predict(z, out)
	return n.head.lossGrad(z, y, n.delta[len(n.sizes)-1])
}
