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
	Search     *Search    `yaml:"search" json:"search,omitempty"` // a grid of candidates (search.go)

	candidate bool // one candidate of a search (Candidates)
}

// Checkpoint sets how often the state is saved for -resume.
type Checkpoint struct {
	Every int    `yaml:"every"` // steps between checkpoints; 0 = none
	Dir   string `yaml:"dir"`   // default <output.dir>/checkpoint
}

// Data says where the rows come from.
type Data struct {
	Train Paths `yaml:"train" json:"train"` // files, directories or globs, relative to train.yaml; empty with synthetic
	Test  Paths `yaml:"test" json:"test"`   // optional held-out set, same format
	// Validation is an optional set, same format, that the stopping rule
	// and a search judge on (instead of training.validation_fraction).
	Validation Paths      `yaml:"validation" json:"validation,omitempty"`
	Format     string     `yaml:"format" json:"format"` // csv, libsvm, parquet or synthetic; "" guesses from the file names
	Label      string     `yaml:"label" json:"label"`   // CSV or Parquet label column; default the last
	Normalize  bool       `yaml:"normalize" json:"normalize"`
	DType      string     `yaml:"dtype" json:"dtype"` // float64 (default) or float32: how features are kept in memory
	Synthetic  *Synthetic `yaml:"synthetic" json:"synthetic,omitempty"`
	Resample   string     `yaml:"resample" json:"resample,omitempty"` // over or under: balance the classes of every epoch (data.Resampler)
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
	// ClassWeight weighs each class's rows: balanced or a map from label to weight.
	ClassWeight *ClassWeight `yaml:"class_weight" json:"class_weight,omitempty"`
}

// Optimizer chooses the update rule.
type Optimizer struct {
	Kind     string  `yaml:"kind" json:"kind"` // sgd, momentum or adam
	LR       float64 `yaml:"lr" json:"lr"`
	Momentum float64 `yaml:"momentum" json:"momentum"`
	Beta1    float64 `yaml:"beta1" json:"beta1"`
	Beta2    float64 `yaml:"beta2" json:"beta2"`
	Epsilon  float64 `yaml:"epsilon" json:"epsilon"`
	// Schedule is the learning rate against the step: constant (default),
	// invscaling (eta0 / t^power_t), step (eta0 · gamma^floor(t/step_size))
	// or cosine (from eta0 down to 0 at the last step); warmup_steps ramp
	// linearly up to eta0 first.
	Schedule    string  `yaml:"schedule" json:"schedule"`
	Eta0        float64 `yaml:"eta0" json:"eta0"`       // default lr
	PowerT      float64 `yaml:"power_t" json:"power_t"` // default 0.25, scikit-learn's
	StepSize    int     `yaml:"step_size" json:"step_size"`
	Gamma       float64 `yaml:"gamma" json:"gamma"` // default 0.1
	WarmupSteps int     `yaml:"warmup_steps" json:"warmup_steps"`
}

// Training sets the schedule.
type Training struct {
	BatchSize int `yaml:"batch_size" json:"batch_size"` // global batch; 0 = full batch
	Steps     int `yaml:"steps" json:"steps"`
	Epochs    int `yaml:"epochs" json:"epochs"`
	EvalEvery int `yaml:"eval_every" json:"eval_every"`
	// Tol turns on scikit-learn's stopping rule: stop when the epoch's mean
	// training loss has not improved by more than tol for n_iter_no_change
	// epochs in a row. Unset: no rule. With tol and neither steps nor
	// epochs, the run is bounded by max_epochs.
	Tol           *float64 `yaml:"tol" json:"tol,omitempty"`
	NIterNoChange int      `yaml:"n_iter_no_change" json:"n_iter_no_change,omitempty"` // default 5
	MaxEpochs     int      `yaml:"max_epochs" json:"max_epochs,omitempty"`             // default 1000, scikit-learn's max_iter
	// ValidationFraction holds out this fraction of the training rows (a
	// split drawn from the seed, the same for any n); the stopping rule then
	// judges the validation score, as scikit-learn's early_stopping.
	ValidationFraction float64 `yaml:"validation_fraction" json:"validation_fraction,omitempty"`
}

// Cluster sets the size of the job and its deadlines.
type Cluster struct {
	Nodes       int      `yaml:"nodes" json:"-"` // how many to wait for; launchers may override
	Timeout     Duration `yaml:"timeout" json:"-"`
	StepTimeout Duration `yaml:"step_timeout" json:"-"`
	// StallWarn is how long a collective waits on a peer before the waiting
	// node says whom it waits on (default a third of StepTimeout).
	StallWarn     Duration `yaml:"stall_warn" json:"-"`
	MinNodes      int      `yaml:"min_nodes" json:"-"`      // a ring trains only with at least this many
	RejoinTimeout Duration `yaml:"rejoin_timeout" json:"-"` // how long a node without quorum waits
	// FrameMAC says whether data-plane frames carry a MAC: auto (default:
	// on, except between two loopback addresses), on or off.
	FrameMAC string `yaml:"frame_mac" json:"-"`
	// Encrypt seals every data-plane frame with AES-GCM, so the gradients
	// cannot be read on the path.
	Encrypt bool `yaml:"encrypt" json:"-"`
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
	for _, ps := range []Paths{cfg.Data.Train, cfg.Data.Test, cfg.Data.Validation} {
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
	if o.Schedule == "" {
		o.Schedule = "constant"
	}
	if o.Eta0 == 0 && !math.IsNaN(o.LR) && !math.IsInf(o.LR, 0) { // a bad lr is reported once, as lr
		o.Eta0 = o.LR
	}
	if o.PowerT == 0 {
		o.PowerT = 0.25
	}
	if o.Gamma == 0 {
		o.Gamma = 0.1
	}
	// momentum, beta1, beta2 and epsilon default in train.OptimizerSpec.WithDefaults.
	if c.Training.NIterNoChange == 0 {
		c.Training.NIterNoChange = 5
	}
	if c.Training.MaxEpochs == 0 {
		c.Training.MaxEpochs = 1000
	}
	if c.Training.Steps == 0 && c.Training.Epochs == 0 {
		c.Training.Epochs = 1
		if c.Training.Tol != nil { // the rule decides, up to max_epochs
			c.Training.Epochs = c.Training.MaxEpochs
		}
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
	if c.Cluster.StallWarn.Duration == 0 {
		c.Cluster.StallWarn.Duration = c.Cluster.StepTimeout.Duration / 3
	}
	if c.Cluster.MinNodes == 0 {
		c.Cluster.MinNodes = 1
	}
	if c.Cluster.RejoinTimeout.Duration == 0 {
		c.Cluster.RejoinTimeout.Duration = 60 * time.Second
	}
	if c.Cluster.FrameMAC == "" {
		c.Cluster.FrameMAC = "auto"
	}
	if c.Output.Dir == "" {
		c.Output.Dir = filepath.Join("runs", c.Name)
	}
	if c.Checkpoint.Dir == "" {
		c.Checkpoint.Dir = filepath.Join(c.Output.Dir, "checkpoint")
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
