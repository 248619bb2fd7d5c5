package node

import (
	"context"
	"fmt"
	"math"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// source is a data set that can read just the rows a node owns.
type source interface {
	NumRows() int
	Read(keep func(row int) bool) (*train.Table, error)
}

// synthetic adapts the generator to source.
type synthetic struct{ spec train.SyntheticSpec }

func (s synthetic) NumRows() int { return s.spec.NumRows() }

func (s synthetic) Read(keep func(int) bool) (*train.Table, error) {
	return train.Synthetic(s.spec, keep)
}

// nodeData is this node's share of the data.
type nodeData struct {
	rows        int        // N: training rows in the whole data set
	part        train.Part // the rows this node owns
	train, test *train.Table
	task        string
	features    int
	classes     int
	mean, std   []float64 // standardization, nil without
}

// taskOf says what the labels mean for the configured model.
func taskOf(cfg *config.Config) string {
	switch cfg.Model.Kind {
	case train.KindLinear:
		return train.TaskRegression
	case train.KindLogistic:
		return train.TaskBinary
	case train.KindSoftmax:
		return train.TaskMulticlass
	}
	if cfg.Model.Output != "" {
		return cfg.Model.Output
	}
	if s := cfg.Data.Synthetic; s != nil && cfg.Data.Format == "synthetic" {
		return s.Task
	}
	return train.TaskRegression
}

func openSources(cfg *config.Config) (tr, te source, err error) {
	dc := cfg.Data
	switch dc.Format {
	case "synthetic":
		s := dc.Synthetic
		spec := train.SyntheticSpec{Task: s.Task, Samples: s.Samples, Features: s.Features, Classes: s.Classes, Noise: s.Noise, Seed: s.Seed}
		if s.Task == train.TaskBinary {
			spec.Classes = 0
		}
		if err := spec.Validate(); err != nil {
			return nil, nil, err
		}
		tr = synthetic{spec}
		if s.TestSamples > 0 {
			ts := spec
			ts.Samples, ts.Offset = s.TestSamples, s.Samples // same hidden model, new rows
			te = synthetic{ts}
		}
		return tr, te, nil
	case "csv":
		f, err := train.OpenCSV(dc.Train, dc.Label)
		if err != nil {
			return nil, nil, err
		}
		tr = f
		if dc.Test != "" {
			g, err := train.OpenCSV(dc.Test, dc.Label)
			if err != nil {
				return nil, nil, err
			}
			if fmt.Sprint(g.FeatureNames()) != fmt.Sprint(f.FeatureNames()) {
				return nil, nil, fmt.Errorf("%s has columns %v, the training set %s has %v", dc.Test, g.FeatureNames(), dc.Train, f.FeatureNames())
			}
			te = g
		}
		return tr, te, nil
	case "libsvm":
		f, err := train.OpenLIBSVM(dc.Train)
		if err != nil {
			return nil, nil, err
		}
		tr = f
		if dc.Test != "" {
			g, err := train.OpenLIBSVM(dc.Test)
			if err != nil {
				return nil, nil, err
			}
			if g.NumFeatures() != f.NumFeatures() {
				return nil, nil, fmt.Errorf("%s has %d features, the training set %s has %d", dc.Test, g.NumFeatures(), dc.Train, f.NumFeatures())
			}
			te = g
		}
		return tr, te, nil
	}
	return nil, nil, fmt.Errorf("data.format %q", dc.Format)
}

// loadData reads this node's rows of the training (and test) set, agrees
// with the other nodes on the number of classes, and standardizes the
// features with statistics of the whole training set (one allreduce). After
// the ring changed, prev carries the classes and statistics agreed before,
// so that only the rows move.
func loadData(ctx context.Context, c *Comm, cfg *config.Config, prev *nodeData) (*nodeData, error) {
	n, r := c.Size(), c.Rank()
	trSrc, teSrc, err := openSources(cfg)
	if err != nil {
		return nil, err
	}
	d := &nodeData{rows: trSrc.NumRows(), task: taskOf(cfg)}
	if d.rows == 0 {
		return nil, fmt.Errorf("the training set %s has no rows", cfg.Data.Train)
	}
	d.part = train.NewSharding(d.rows, 0).Part(r, n)
	if d.train, err = trSrc.Read(d.part.Owns); err != nil {
		return nil, err
	}
	if teSrc != nil && teSrc.NumRows() > 0 {
		tp := train.NewSharding(teSrc.NumRows(), 0).Part(r, n)
		if d.test, err = teSrc.Read(tp.Owns); err != nil {
			return nil, err
		}
	}
	d.features = d.train.Features

	switch {
	case prev != nil:
		d.classes = prev.classes
	case d.task == train.TaskBinary:
		d.classes = 2
	case d.task == train.TaskMulticlass:
		d.classes = cfg.Model.Classes
		if s := cfg.Data.Synthetic; d.classes == 0 && s != nil && cfg.Data.Format == "synthetic" {
			d.classes = s.Classes
		}
		if d.classes == 0 { // from the data: the largest label of any node, plus one
			v := []float64{d.train.MaxLabel()}
			if d.test != nil {
				v[0] = math.Max(v[0], d.test.MaxLabel())
			}
			if err := c.AllReduce(ctx, v, ring.Max); err != nil {
				return nil, fmt.Errorf("agreeing on the number of classes: %w", err)
			}
			d.classes = int(v[0]) + 1
		}
	}
	for _, t := range []*train.Table{d.train, d.test} {
		if t != nil {
			if err := t.PrepareLabels(d.task, d.classes); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case prev != nil && prev.mean != nil:
		d.mean, d.std = prev.mean, prev.std
		d.train.Standardize(d.mean, d.std)
		if d.test != nil {
			d.test.Standardize(d.mean, d.std)
		}
	case cfg.Data.Normalize:
		mom := make([]float64, 2*d.features+1)
		d.train.Moments(mom)
		if err := c.AllReduce(ctx, mom, ring.Sum); err != nil {
			return nil, fmt.Errorf("standardization statistics: %w", err)
		}
		d.mean, d.std = train.MeanStd(mom)
		d.train.Standardize(d.mean, d.std)
		if d.test != nil {
			d.test.Standardize(d.mean, d.std)
		}
	}
	return d, nil
}

// probeData learns the shape of the data (rows, features, task) without
// reading any row: what a joiner needs before the ring sends it the rest.
func probeData(cfg *config.Config) (*nodeData, error) {
	trSrc, _, err := openSources(cfg)
	if err != nil {
		return nil, err
	}
	empty, err := trSrc.Read(func(int) bool { return false })
	if err != nil {
		return nil, err
	}
	return &nodeData{rows: trSrc.NumRows(), task: taskOf(cfg), features: empty.Features, train: empty}, nil
}
