// Package config is the schema of train.yaml: one strict document (an
// unknown or misspelled key is an error that names it), with defaults and a
// Validate that names the bad field.
//
//	cfg, err := config.Load("train.yaml")
//	if err != nil { ... }           // e.g. train.yaml: line 7: field lr2 not found in type config.Optimizer
//	digest := cfg.Digest()          // nodes with another digest are refused
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole train.yaml.
type Config struct {
	Name       string     `yaml:"name" json:"name"`
	Seed       uint64     `yaml:"seed" json:"seed"`
	Data       Data       `yaml:"data" json:"data"`
	Model      Model      `yaml:"model" json:"model"`
	Optimizer  Optimizer  `yaml:"optimizer" json:"optimizer"`
	Training   Training   `yaml:"training" json:"training"`
	Cluster    Cluster    `yaml:"cluster" json:"cluster"`
	Output     Output     `yaml:"output" json:"-"` // where results go does not change the run
	Checkpoint Checkpoint `yaml:"checkpoint" json:"-"`
}

// Checkpoint sets how often the state is saved for -resume.
type Checkpoint struct {
	Every int    `yaml:"every"` // steps between checkpoints; 0 = none
	Dir   string `yaml:"dir"`   // default <output.dir>/checkpoint
}

// Data says where the rows come from.
type Data struct {
	Train     Paths      `yaml:"train" json:"train"`   // files, directories or globs, relative to train.yaml; empty with synthetic
	Test      Paths      `yaml:"test" json:"test"`     // optional held-out set, same format
	Format    string     `yaml:"format" json:"format"` // csv, libsvm, parquet or synthetic; "" guesses from the file names
	Label     string     `yaml:"label" json:"label"`   // CSV or Parquet label column; default the last
	Normalize bool       `yaml:"normalize" json:"normalize"`
	DType     string     `yaml:"dtype" json:"dtype"` // float64 (default) or float32: how features are kept in memory
	Synthetic *Synthetic `yaml:"synthetic" json:"synthetic,omitempty"`
}

// Paths is a list of data paths (files, directories, glob patterns),
// written in YAML as one string or a list of strings.
type Paths []string

// UnmarshalYAML takes a string or a list of strings.
func (p *Paths) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*p = nil
			return nil
		}
		*p = Paths{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*p = l
		return nil
	}
	return fmt.Errorf("line %d: want a path or a list of paths", n.Line)
}

// String returns the paths separated by commas.
func (p Paths) String() string { return strings.Join(p, ", ") }

// Synthetic describes the built-in generator.
type Synthetic struct {
	Task        string  `yaml:"task" json:"task"` // regression, binary or multiclass
	Samples     int     `yaml:"samples" json:"samples"`
	TestSamples int     `yaml:"test_samples" json:"test_samples"`
	Features    int     `yaml:"features" json:"features"`
	Classes     int     `yaml:"classes" json:"classes"`
	Noise       float64 `yaml:"noise" json:"noise"`
	Seed        uint64  `yaml:"seed" json:"seed"`
}

// Model chooses the model.
type Model struct {
	Kind       string  `yaml:"kind" json:"kind"` // linear, logistic, softmax or mlp
	Hidden     []int   `yaml:"hidden" json:"hidden,omitempty"`
	Activation string  `yaml:"activation" json:"activation,omitempty"` // relu or tanh
	Output     string  `yaml:"output" json:"output,omitempty"`         // mlp: regression, binary or multiclass
	Classes    int     `yaml:"classes" json:"classes,omitempty"`       // softmax/mlp; 0 = from the data
	L2         float64 `yaml:"l2" json:"l2"`
}

// Optimizer chooses the update rule.
type Optimizer struct {
	Kind     string  `yaml:"kind" json:"kind"` // sgd, momentum or adam
	LR       float64 `yaml:"lr" json:"lr"`
	Momentum float64 `yaml:"momentum" json:"momentum"`
	Beta1    float64 `yaml:"beta1" json:"beta1"`
	Beta2    float64 `yaml:"beta2" json:"beta2"`
	Epsilon  float64 `yaml:"epsilon" json:"epsilon"`
}

// Training sets the schedule.
type Training struct {
	BatchSize int `yaml:"batch_size" json:"batch_size"` // global batch; 0 = full batch
	Steps     int `yaml:"steps" json:"steps"`
	Epochs    int `yaml:"epochs" json:"epochs"`
	EvalEvery int `yaml:"eval_every" json:"eval_every"`
}

// Cluster sets the size of the job and its deadlines.
type Cluster struct {
	Nodes         int      `yaml:"nodes" json:"-"` // how many to wait for; launchers may override
	Timeout       Duration `yaml:"timeout" json:"-"`
	StepTimeout   Duration `yaml:"step_timeout" json:"-"`
	MinNodes      int      `yaml:"min_nodes" json:"-"`      // a ring trains only with at least this many
	RejoinTimeout Duration `yaml:"rejoin_timeout" json:"-"` // how long a node without quorum waits
}

// Output says where results go.
type Output struct {
	Dir string `yaml:"dir"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses "30s", "2m" and the like.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 2m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// Default is the built-in job: logistic regression on synthetic data, 4 nodes.
const Default = `# The built-in default job: binary logistic regression on a synthetic data set.
name: demo
seed: 1
data:
  format: synthetic
  normalize: true
  synthetic: {task: binary, samples: 20000, test_samples: 4000, features: 20, noise: 0.5, seed: 7}
model: {kind: logistic, l2: 0.0001}
optimizer: {kind: adam, lr: 0.05}
training: {batch_size: 256, steps: 400, eval_every: 50}
cluster: {nodes: 4, timeout: 60s, step_timeout: 30s}
`

// Load reads and validates a train.yaml file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Data paths are relative to the file that names them.
	dir := filepath.Dir(path)
	for _, ps := range []Paths{cfg.Data.Train, cfg.Data.Test} {
		for i, p := range ps {
			if p != "" && !filepath.IsAbs(p) {
				ps[i] = filepath.Join(dir, p)
			}
		}
	}
	return cfg, nil
}

// Parse decodes a train.yaml document strictly, applies defaults and
// validates it.
func Parse(b []byte) (cfg *Config, err error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	defer func() { // yaml.v3 panics on some documents (a map as a key under a merge <<)
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("not a valid train.yaml document (%v)", r)
		}
	}()
	if err := dec.Decode(&c); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Name == "" {
		c.Name = "run"
	}
	if c.Data.Format == "" && c.Data.Synthetic != nil && len(c.Data.Train) == 0 {
		c.Data.Format = "synthetic"
	} // otherwise "" lets the reader guess from the files
	if c.Data.DType == "" {
		c.Data.DType = "float64"
	}
	if s := c.Data.Synthetic; s != nil {
		if s.Classes == 0 && s.Task == "multiclass" {
			s.Classes = 3
		}
		if s.Seed == 0 {
			s.Seed = c.Seed
		}
	}
	if c.Model.Kind == "mlp" && c.Model.Activation == "" {
		c.Model.Activation = "relu"
	}
	o := &c.Optimizer
	if o.Kind == "" {
		o.Kind = "sgd"
	}
	if o.LR == 0 {
		o.LR = 0.01
	}
	// momentum, beta1, beta2 and epsilon default in train.OptimizerSpec.WithDefaults.
	if c.Training.Steps == 0 && c.Training.Epochs == 0 {
		c.Training.Epochs = 1
	}
	if c.Cluster.Nodes == 0 {
		c.Cluster.Nodes = 1
	}
	if c.Cluster.Timeout.Duration == 0 {
		c.Cluster.Timeout.Duration = 60 * time.Second
	}
	if c.Cluster.StepTimeout.Duration == 0 {
		c.Cluster.StepTimeout.Duration = 30 * time.Second
	}
	if c.Cluster.MinNodes == 0 {
		c.Cluster.MinNodes = 1
	}
	if c.Cluster.RejoinTimeout.Duration == 0 {
		c.Cluster.RejoinTimeout.Duration = 60 * time.Second
	}
	if c.Output.Dir == "" {
		c.Output.Dir = filepath.Join("runs", c.Name)
	}
	if c.Checkpoint.Dir == "" {
		c.Checkpoint.Dir = filepath.Join(c.Output.Dir, "checkpoint")
	}
}

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
		for i, p := range append(append(Paths{}, d.Train...), d.Test...) {
			if p == "" {
				bad("data.train/test", "path %d is empty", i+1)
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
	t := c.Training
	if t.BatchSize < 0 {
		bad("training.batch_size", "%d is negative (0 means full batch)", t.BatchSize)
	} else {
		atMost("training.batch_size", int64(t.BatchSize), MaxBatchSize, "2^31 rows in a global batch")
	}
	if t.Steps < 0 {
		bad("training.steps", "%d is negative", t.Steps)
	} else {
		atMost("training.steps", int64(t.Steps), MaxSteps, "10^9 steps")
	}
	if t.Epochs < 0 {
		bad("training.epochs", "%d is negative", t.Epochs)
	} else {
		atMost("training.epochs", int64(t.Epochs), MaxEpochs, "10^9 epochs")
	}
	if t.Steps > 0 && t.Epochs > 0 {
		bad("training", "set steps or epochs, not both")
	}
	if t.EvalEvery < 0 {
		bad("training.eval_every", "%d is negative", t.EvalEvery)
	} else {
		atMost("training.eval_every", int64(t.EvalEvery), MaxEvalEvery, "10^9 steps between evaluations")
	}
	cl := c.Cluster
	if cl.Nodes < 1 {
		bad("cluster.nodes", "%d: want at least 1", cl.Nodes)
	} else {
		atMost("cluster.nodes", int64(cl.Nodes), MaxNodes, "4096 nodes")
	}
	if cl.MinNodes < 1 {
		bad("cluster.min_nodes", "%d: want at least 1", cl.MinNodes)
	} else {
		atMost("cluster.min_nodes", int64(cl.MinNodes), MaxNodes, "4096 nodes")
	}
	for _, dt := range []struct {
		key string
		d   time.Duration
	}{{"cluster.timeout", cl.Timeout.Duration}, {"cluster.step_timeout", cl.StepTimeout.Duration}, {"cluster.rejoin_timeout", cl.RejoinTimeout.Duration}} {
		switch {
		case dt.d <= 0:
			bad(dt.key, "%v: want a positive duration", dt.d)
		case dt.d > MaxTimeout:
			bad(dt.key, "%v is above the limit of 24h", dt.d)
		}
	}
	if c.Checkpoint.Every < 0 {
		bad("checkpoint.every", "%d is negative (0 means no checkpoints)", c.Checkpoint.Every)
	} else {
		atMost("checkpoint.every", int64(c.Checkpoint.Every), MaxCheckpointEvery, "10^9 steps between checkpoints")
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

// Digest identifies the run: a hash of everything that changes the
// trajectory (not the output directory or the cluster's size and
// deadlines). Nodes whose digests differ run different jobs and refuse each
// other.
func (c *Config) Digest() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
