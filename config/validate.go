package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// Upper bounds on the sizes in train.yaml. Each keeps a typo (an extra
// zero, a value pasted into the wrong key) from turning into a makeslice
// panic or an out-of-memory kill hours into a run; a real job sits far below
// all of them.
const (
	// MaxSteps bounds training.steps: 10^9 optimizer steps.
	MaxSteps = 1_000_000_000
	// MaxEpochs bounds training.epochs: 10^9 passes over the data.
	MaxEpochs = 1_000_000_000
	// MaxBatchSize bounds training.batch_size: 2^31 rows in a global batch.
	MaxBatchSize = 1 << 31
	// MaxEvalEvery bounds training.eval_every: 10^9 steps between evaluations.
	MaxEvalEvery = 1_000_000_000
	// MaxCheckpointEvery bounds checkpoint.every: 10^9 steps between checkpoints.
	MaxCheckpointEvery = 1_000_000_000
	// MaxHiddenLayers bounds len(model.hidden): 16 hidden layers.
	MaxHiddenLayers = 16
	// MaxHiddenWidth bounds each model.hidden[i]: 2^16 units in a layer.
	MaxHiddenWidth = 1 << 16
	// MaxParams bounds the weights of an mlp that the config alone
	// determines, Σ hidden[i]*hidden[i+1] plus hidden[last]*model.classes
	// (and features*hidden[0] when the data is synthetic, so the features
	// are known): 2^28 weights, 2 GiB as float64 before the optimizer's
	// state. It also bounds the hidden model of a synthetic multiclass set,
	// classes*features.
	MaxParams = 1 << 28
	// MaxClasses bounds model.classes and data.synthetic.classes: 2^16 classes.
	MaxClasses = 1 << 16
	// MaxSyntheticRows bounds data.synthetic.samples + test_samples: 2^31 rows.
	MaxSyntheticRows = 1 << 31
	// MaxSyntheticValues bounds (samples + test_samples) * features of a
	// synthetic set: 2^32 values, 32 GiB as float64. The generated tables
	// must fit in memory.
	MaxSyntheticValues = 1 << 32
	// MaxSyntheticFeatures bounds data.synthetic.features: 2^20 features.
	MaxSyntheticFeatures = 1 << 20
	// MaxNodes bounds cluster.nodes and cluster.min_nodes: 4096 nodes.
	// (min_nodes may exceed nodes: a launcher's -np can override nodes.)
	MaxNodes = 4096
	// MaxTimeout bounds cluster.timeout, step_timeout and rejoin_timeout: 24h.
	MaxTimeout = 24 * time.Hour
)

// Validate names every bad field. All the errors are reported at once,
// joined, each starting with its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	// finite reports NaN and ±Inf (YAML's .nan, .inf and -.inf) and says
	// whether v is a finite number, so the range checks run only on those.
	finite := func(field string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad(field, "%v is not a finite number", v)
			return false
		}
		return true
	}
	// atMost reports v > limit, what saying what the limit counts.
	atMost := func(field string, v, limit int64, what string) bool {
		if v > limit {
			bad(field, "%d is above the limit of %d (%s)", v, limit, what)
			return false
		}
		return true
	}
	// count checks an integer against lo (below it: "v<low>") and limit.
	count := func(field string, v, lo int64, low string, limit int64, what string) {
		if v < lo {
			bad(field, "%d%s", v, low)
			return
		}
		atMost(field, v, limit, what)
	}
	d := c.Data
	switch {
	case !oneOf(d.Format, "", "csv", "libsvm", "parquet", "synthetic"):
		bad("data.format", "%q is not csv, libsvm, parquet or synthetic", d.Format)
	case d.Format == "synthetic":
		if d.Synthetic == nil {
			bad("data.synthetic", "missing (data.format is synthetic)")
		} else {
			validateSynthetic(d.Synthetic, bad, finite, atMost)
		}
	default:
		if len(d.Train) == 0 {
			bad("data.train", "missing (a file, a directory, a glob pattern or a list of them)")
		}
		for i, p := range slices.Concat(d.Train, d.Test, d.Validation) {
			if p == "" {
				bad("data.train/test/validation", "path %d is empty", i+1)
			}
		}
	}
	if !oneOf(d.DType, "float64", "float32") {
		bad("data.dtype", "%q is not float64 or float32", d.DType)
	}
	m := c.Model
	if !oneOf(m.Kind, "linear", "logistic", "softmax", "mlp") {
		bad("model.kind", "%q is not linear, logistic, softmax or mlp", m.Kind)
	}
	var classesOK bool
	if m.Classes < 0 {
		bad("model.classes", "%d is negative (0 means from the data)", m.Classes)
		classesOK = false
	} else {
		classesOK = atMost("model.classes", int64(m.Classes), MaxClasses, "2^16 classes")
	}
	if m.Kind == "mlp" {
		if len(m.Hidden) == 0 {
			bad("model.hidden", "an mlp needs at least one hidden layer, e.g. [32]")
		}
		widthsOK := atMost("model.hidden", int64(len(m.Hidden)), MaxHiddenLayers, "16 hidden layers")
		for i, h := range m.Hidden {
			key := fmt.Sprintf("model.hidden[%d]", i)
			if h < 1 {
				bad(key, "%d: want at least 1", h)
				widthsOK = false
			} else if !atMost(key, int64(h), MaxHiddenWidth, "2^16 units in a layer") {
				widthsOK = false
			}
		}
		if widthsOK && classesOK && len(m.Hidden) > 0 {
			// Each term is at most 2^20*2^16 and there are at most 18: no overflow.
			var n int64
			for i := 0; i+1 < len(m.Hidden); i++ {
				n += int64(m.Hidden[i]) * int64(m.Hidden[i+1])
			}
			n += int64(m.Hidden[len(m.Hidden)-1]) * int64(m.Classes)
			what := "weights between the hidden layers and to model.classes"
			if s := d.Synthetic; d.Format == "synthetic" && s != nil && s.Features >= 1 && s.Features <= MaxSyntheticFeatures {
				n += int64(s.Features) * int64(m.Hidden[0])
				what = "weights from data.synthetic.features through the hidden layers to model.classes"
			}
			if n > MaxParams {
				bad("model.hidden", "%v has %d %s, above the limit of %d (2^28 weights, 2 GiB as float64)", m.Hidden, n, what, int64(MaxParams))
			}
		}
		if !oneOf(m.Activation, "relu", "tanh") {
			bad("model.activation", "%q is not relu or tanh", m.Activation)
		}
		if m.Output != "" && !oneOf(m.Output, "regression", "binary", "multiclass") {
			bad("model.output", "%q is not regression, binary or multiclass", m.Output)
		} else if m.Output == "" && d.Format != "synthetic" {
			bad("model.output", "an mlp on data files must be told what its labels are: regression, binary or multiclass (it cannot tell from the file)")
		}
	} else if len(m.Hidden) > 0 {
		bad("model.hidden", "only an mlp has hidden layers")
	}
	if finite("model.l2", m.L2) && m.L2 < 0 {
		bad("model.l2", "%v is negative", m.L2)
	}
	o := c.Optimizer
	if !oneOf(o.Kind, "sgd", "momentum", "adam") {
		bad("optimizer.kind", "%q is not sgd, momentum or adam", o.Kind)
	}
	if finite("optimizer.lr", o.LR) && o.LR <= 0 {
		bad("optimizer.lr", "%v: want a positive learning rate", o.LR)
	}
	if finite("optimizer.momentum", o.Momentum) && (o.Momentum < 0 || o.Momentum >= 1) {
		bad("optimizer.momentum", "%v: want 0 <= momentum < 1", o.Momentum)
	}
	if finite("optimizer.beta1", o.Beta1) && (o.Beta1 < 0 || o.Beta1 >= 1) {
		bad("optimizer.beta1", "%v: want 0 <= beta1 < 1", o.Beta1)
	}
	if finite("optimizer.beta2", o.Beta2) && (o.Beta2 < 0 || o.Beta2 >= 1) {
		bad("optimizer.beta2", "%v: want 0 <= beta2 < 1", o.Beta2)
	}
	if finite("optimizer.epsilon", o.Epsilon) && o.Epsilon < 0 {
		bad("optimizer.epsilon", "%v: want a positive epsilon (0 means the default)", o.Epsilon)
	}
	if !oneOf(o.Schedule, "constant", "invscaling", "step", "cosine") {
		bad("optimizer.schedule", "%q is not constant, invscaling, step or cosine", o.Schedule)
	}
	if o.Eta0 != 0 && finite("optimizer.eta0", o.Eta0) && o.Eta0 < 0 {
		bad("optimizer.eta0", "%v: want a positive learning rate (0 means lr)", o.Eta0)
	}
	if finite("optimizer.power_t", o.PowerT) && o.PowerT < 0 {
		bad("optimizer.power_t", "%v is negative", o.PowerT)
	}
	if finite("optimizer.gamma", o.Gamma) && (o.Gamma < 0 || o.Gamma > 1) {
		bad("optimizer.gamma", "%v: want 0 < gamma <= 1", o.Gamma)
	}
	if o.Schedule == "step" && o.StepSize < 1 {
		bad("optimizer.step_size", "%d: the step schedule needs the steps between decays (at least 1)", o.StepSize)
	} else {
		count("optimizer.step_size", int64(o.StepSize), 0, " is negative", MaxSteps, "10^9 steps")
	}
	count("optimizer.warmup_steps", int64(o.WarmupSteps), 0, " is negative", MaxSteps, "10^9 steps")
	t := c.Training
	count("training.batch_size", int64(t.BatchSize), 0, " is negative (0 means full batch)", MaxBatchSize, "2^31 rows in a global batch")
	count("training.steps", int64(t.Steps), 0, " is negative", MaxSteps, "10^9 steps")
	count("training.epochs", int64(t.Epochs), 0, " is negative", MaxEpochs, "10^9 epochs")
	if t.Steps > 0 && t.Epochs > 0 {
		bad("training", "set steps or epochs, not both")
	}
	if t.Tol != nil {
		finite("training.tol", *t.Tol)
	}
	if finite("training.validation_fraction", t.ValidationFraction) && (t.ValidationFraction < 0 || t.ValidationFraction >= 1) {
		bad("training.validation_fraction", "%v: want 0 <= fraction < 1", t.ValidationFraction)
	} else if t.ValidationFraction > 0 && t.Tol == nil && !c.searching() {
		bad("training.validation_fraction", "holds out rows for the stopping rule or a search: set training.tol or a search block too")
	}
	if len(d.Validation) > 0 {
		switch {
		case t.ValidationFraction > 0:
			bad("data.validation", "set data.validation or training.validation_fraction, not both")
		case t.Tol == nil && !c.searching():
			bad("data.validation", "judges the stopping rule or a search: set training.tol or a search block too")
		}
	}
	c.validateSearch(bad)
	count("training.n_iter_no_change", int64(t.NIterNoChange), 1, ": want at least 1 epoch", MaxEpochs, "10^9 epochs")
	count("training.max_epochs", int64(t.MaxEpochs), 1, ": want at least 1 epoch", MaxEpochs, "10^9 epochs")
	count("training.eval_every", int64(t.EvalEvery), 0, " is negative", MaxEvalEvery, "10^9 steps between evaluations")
	cl := c.Cluster
	count("cluster.nodes", int64(cl.Nodes), 1, ": want at least 1", MaxNodes, "4096 nodes")
	count("cluster.min_nodes", int64(cl.MinNodes), 1, ": want at least 1", MaxNodes, "4096 nodes")
	for _, dt := range []struct {
		key string
		d   time.Duration
	}{{"cluster.timeout", cl.Timeout.Duration}, {"cluster.step_timeout", cl.StepTimeout.Duration}, {"cluster.stall_warn", cl.StallWarn.Duration}, {"cluster.rejoin_timeout", cl.RejoinTimeout.Duration}} {
		switch {
		case dt.d <= 0:
			bad(dt.key, "%v: want a positive duration", dt.d)
		case dt.d > MaxTimeout:
			bad(dt.key, "%v is above the limit of 24h", dt.d)
		}
	}
	if !oneOf(cl.FrameMAC, "auto", "on", "off") {
		bad("cluster.frame_mac", "%q: want auto, on or off", cl.FrameMAC)
	} else if cl.Encrypt && cl.FrameMAC == "off" {
		bad("cluster.encrypt", "true with cluster.frame_mac: off: encryption authenticates every frame; drop frame_mac or set it to on")
	}
	c.validateImbalance(bad)
	count("checkpoint.every", int64(c.Checkpoint.Every), 0, " is negative (0 means no checkpoints)", MaxCheckpointEvery, "10^9 steps between checkpoints")
	if c.Search != nil && len(errs) == 0 { // each candidate is a job of its own
		if _, err := c.Candidates(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validateSynthetic checks data.synthetic with Validate's helpers.
func validateSynthetic(s *Synthetic, bad func(field, format string, args ...any),
	finite func(field string, v float64) bool, atMost func(field string, v, limit int64, what string) bool) {
	if !oneOf(s.Task, "regression", "binary", "multiclass") {
		bad("data.synthetic.task", "%q is not regression, binary or multiclass", s.Task)
	}
	rowsOK := true
	if s.Samples < 1 {
		bad("data.synthetic.samples", "%d: want at least 1", s.Samples)
		rowsOK = false
	} else if !atMost("data.synthetic.samples", int64(s.Samples), MaxSyntheticRows, "2^31 rows") {
		rowsOK = false
	}
	if s.TestSamples < 0 {
		bad("data.synthetic.test_samples", "%d is negative", s.TestSamples)
		rowsOK = false
	} else if !atMost("data.synthetic.test_samples", int64(s.TestSamples), MaxSyntheticRows, "2^31 rows") {
		rowsOK = false
	}
	// Each is at most 2^31 now: the sums and products below fit in an int64.
	rows := int64(s.Samples) + int64(s.TestSamples)
	if rowsOK && rows > MaxSyntheticRows {
		bad("data.synthetic.samples", "samples + test_samples = %d rows is above the limit of %d (2^31 rows)", rows, int64(MaxSyntheticRows))
		rowsOK = false
	}
	featuresOK := true
	if s.Features < 1 {
		bad("data.synthetic.features", "%d: want at least 1", s.Features)
		featuresOK = false
	} else if !atMost("data.synthetic.features", int64(s.Features), MaxSyntheticFeatures, "2^20 features") {
		featuresOK = false
	}
	if rowsOK && featuresOK {
		if n := rows * int64(s.Features); n > MaxSyntheticValues {
			bad("data.synthetic.features", "(samples + test_samples) * features = %d values is above the limit of %d (2^32 values, 32 GiB as float64: the generated tables must fit in memory)", n, int64(MaxSyntheticValues))
		}
	}
	switch {
	case s.Classes < 0:
		bad("data.synthetic.classes", "%d is negative", s.Classes)
	case s.Task == "multiclass" && s.Classes < 2:
		bad("data.synthetic.classes", "%d: want at least 2", s.Classes)
	case s.Task == "binary" && s.Classes != 0 && s.Classes != 2:
		bad("data.synthetic.classes", "%d: a binary task has 2 classes (leave it out)", s.Classes)
	case s.Task == "regression" && s.Classes != 0:
		bad("data.synthetic.classes", "%d: a regression task has no classes (leave it out)", s.Classes)
	case atMost("data.synthetic.classes", int64(s.Classes), MaxClasses, "2^16 classes") && featuresOK:
		if n := int64(s.Classes) * int64(s.Features); n > MaxParams {
			bad("data.synthetic.classes", "classes * features = %d weights of the generating model is above the limit of %d (2^28 weights)", n, int64(MaxParams))
		}
	}
	if finite("data.synthetic.noise", s.Noise) && s.Noise < 0 {
		bad("data.synthetic.noise", "%v is negative", s.Noise)
	}
}
