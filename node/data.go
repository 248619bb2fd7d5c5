package node

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
)

// nodeData is this node's share of the data, and the opened data sets whose
// index (where every virtual shard starts) is kept for the run, so that a
// ring change reads only the shards that move.
type nodeData struct {
	rows        int // N: training rows in the whole data set
	trainSrc    data.Source
	testSrc     data.Source // nil without a test set
	valSrc      data.Source // data.validation; nil without
	part, tpart data.Spread // the training and test shards this node owns
	vpart       data.Spread // and the validation shards
	train, test *data.Held  // the shards it holds (test: nil without a test set)
	val         *data.Held  // nil without data.validation
	task        string
	features    int
	classes     int
	mean, std   []float64 // standardization, nil without
	classCounts []float64 // training rows per class (per shard with data.resample), for imbalance.go; nil without
	shaped      bool      // classes, mean, std and classCounts are known (agreed, or from another member)
	read        int       // rows parsed by the last loadData
	readTook    time.Duration
	loadStart   time.Time // when the last loadData began, and ended (for the timeline)
	loadEnd     time.Time
}

// maxClasses bounds the number of classes taken from the labels: each costs
// a row of weights.
const maxClasses = 1 << 16

// taskOf says what the labels mean for the configured model (config
// validation makes an mlp on data files say it).
func taskOf(cfg *config.Config) string {
	if t := cfg.Task(); t != "" {
		return t
	}
	return train.TaskRegression
}

// openSources opens (and indexes) the training and test sets. With a ring
// (c != nil), its nodes index together, each scanning its share of the
// bytes; without, this node indexes alone (a joiner).
func openSources(ctx context.Context, c *elastic.Comm, cfg *config.Config) (tr, te, va data.Source, err error) {
	dc := cfg.Data
	f32 := dc.DType == "float32"
	if dc.Format == "synthetic" {
		s := dc.Synthetic
		spec := data.SyntheticSpec{Task: s.Task, Samples: s.Samples, Features: s.Features, Classes: s.Classes, Noise: s.Noise, Seed: s.Seed}
		if s.Task == train.TaskBinary {
			spec.Classes = 0
		}
		if tr, err = data.NewSynthetic(spec, 0, f32); err != nil {
			return nil, nil, nil, err
		}
		if s.TestSamples > 0 {
			ts := spec
			ts.Samples, ts.Offset = s.TestSamples, s.Samples // same hidden model, new rows
			if te, err = data.NewSynthetic(ts, 0, f32); err != nil {
				return nil, nil, nil, err
			}
		}
		return tr, te, nil, nil
	}
	spec := data.Spec{Paths: dc.Train, Format: dc.Format, Label: dc.Label, Float32: f32}
	if c != nil && c.Size() > 1 {
		spec.Rank, spec.Nodes = c.Rank(), c.Size()
		spec.Exchange = func(ctx context.Context, v []float64) error { return c.AllReduce(ctx, ring.Sum, v) }
	}
	if tr, err = data.Open(ctx, spec); err != nil {
		return nil, nil, nil, err
	}
	other := func(paths config.Paths) (data.Source, error) {
		if len(paths) == 0 {
			return nil, nil
		}
		spec.Paths = paths
		src, err := data.Open(ctx, spec)
		if err != nil {
			return nil, err
		}
		if fmt.Sprint(src.FeatureNames()) != fmt.Sprint(tr.FeatureNames()) {
			return nil, fmt.Errorf("%s has features %v, the training set %s has %v", src.Name(), src.FeatureNames(), tr.Name(), tr.FeatureNames())
		}
		return src, nil
	}
	if te, err = other(dc.Test); err != nil {
		return nil, nil, nil, err
	}
	if va, err = other(dc.Validation); err != nil {
		return nil, nil, nil, err
	}
	return tr, te, va, nil
}

// openData opens (and indexes) the data sets into t.data, keeping the
// shape it may hold already (from another member or a checkpoint), which
// must fit them. With c, the ring's members index together, each scanning
// its share of the bytes; without, this node indexes alone.
func (t *trainer) openData(ctx context.Context, c *elastic.Comm) error {
	tr, te, va, err := openSources(ctx, c, t.cfg)
	if err != nil {
		return err
	}
	rows, features := tr.Rows(), len(tr.FeatureNames())
	if rows == 0 {
		return fmt.Errorf("the training set %s has no rows", tr.Name())
	}
	d := t.data
	if d == nil {
		d = &nodeData{task: taskOf(t.cfg)}
		t.data = d
	}
	if d.shaped && (d.rows != rows || d.features != features) {
		return fmt.Errorf("the training set %s has %d rows of %d features here, the ring's state was made from %d rows of %d (is it the same data on every host?)",
			tr.Name(), rows, features, d.rows, d.features)
	}
	d.rows, d.features, d.trainSrc, d.testSrc, d.valSrc = rows, features, tr, te, va
	return nil
}

// loadData gives this node the rows of the training (and test and
// validation) shards it owns in c's ring: it drops the shards it no longer
// owns and reads only the new ones. With agree (the job's first ring) the
// nodes also agree on the number of classes and the class counts, and
// standardize the features with statistics of the whole training set (one
// allreduce each); otherwise d holds them already.
func loadData(ctx context.Context, c *elastic.Comm, cfg *config.Config, d *nodeData, agree bool) error {
	r, names := c.Rank(), shardNames(c.Members())
	start := time.Now()
	d.part = d.trainSrc.Sharding().Spread(names)[r]
	newTrain, err := moveShards(ctx, d.trainSrc, &d.train, d.part)
	if err != nil {
		return err
	}
	var newTest []*data.Table // of the test and validation sets
	if d.testSrc != nil && d.testSrc.Rows() > 0 {
		d.tpart = d.testSrc.Sharding().Spread(names)[r]
		if newTest, err = moveShards(ctx, d.testSrc, &d.test, d.tpart); err != nil {
			return err
		}
	}
	if d.valSrc != nil && d.valSrc.Rows() > 0 {
		d.vpart = d.valSrc.Sharding().Spread(names)[r]
		newVal, err := moveShards(ctx, d.valSrc, &d.val, d.vpart)
		if err != nil {
			return err
		}
		newTest = append(newTest, newVal...)
	}
	d.read, d.readTook = 0, time.Since(start)
	for _, t := range append(newTrain, newTest...) {
		d.read += t.Len()
	}
	if agree {
		if err := d.agreeClasses(ctx, c, cfg, append(newTrain, newTest...)); err != nil {
			return err
		}
	}
	for _, t := range append(newTrain, newTest...) {
		if err := t.PrepareLabels(d.task, d.classes); err != nil {
			return err
		}
	}
	if agree {
		if err := d.countClasses(ctx, c, cfg, newTrain); err != nil {
			return err
		}
		if cfg.Data.Normalize {
			mom := make([]float64, 2*d.features+1)
			for _, t := range newTrain {
				t.AddMoments(mom)
			}
			if err := c.AllReduce(ctx, ring.Sum, mom); err != nil {
				return fmt.Errorf("standardization statistics: %w", err)
			}
			d.mean, d.std = data.MeanStd(mom)
		}
		d.shaped = true
	}
	if d.mean != nil {
		for _, t := range append(newTrain, newTest...) {
			t.Standardize(d.mean, d.std)
		}
	}
	d.loadStart, d.loadEnd = start, time.Now()
	return nil
}

// agreeClasses sets the number of classes: from the task or the config,
// or else from the data (the largest label of any node, plus one).
func (d *nodeData) agreeClasses(ctx context.Context, c *elastic.Comm, cfg *config.Config, tables []*data.Table) error {
	switch d.task {
	case train.TaskBinary:
		d.classes = 2
	case train.TaskMulticlass:
		d.classes = cfg.Model.Classes
		if s := cfg.Data.Synthetic; d.classes == 0 && s != nil && cfg.Data.Format == "synthetic" {
			d.classes = s.Classes
		}
		if d.classes > 0 {
			return nil
		}
		v := []float64{math.Inf(-1)}
		for _, t := range tables {
			v[0] = math.Max(v[0], t.MaxLabel())
		}
		if err := c.AllReduce(ctx, ring.Max, v); err != nil {
			return fmt.Errorf("agreeing on the number of classes: %w", err)
		}
		if v[0] >= maxClasses {
			return fmt.Errorf("the largest class label in %s is %v: more than %d classes (is data.label the right column? model.classes sets the number)", d.trainSrc.Name(), v[0], maxClasses)
		}
		d.classes = int(v[0]) + 1
	}
	return nil
}

// shardNames names the members of a ring for the assignment of shards
// (data.Sharding.Spread): by host and slot, which stay the same when a
// process restarts or the job resumes, so that a survivor keeps its shards.
func shardNames(ring []elastic.Member) []string {
	names := make([]string, len(ring))
	for i, m := range ring {
		names[i] = m.Host + "/" + strconv.Itoa(m.Slot)
	}
	return names
}

// moveShards makes *held hold exactly the shards of part: it drops the
// others and reads only the missing ones, which it returns.
func moveShards(ctx context.Context, src data.Source, held **data.Held, part data.Spread) ([]*data.Table, error) {
	if *held == nil {
		*held = data.NewHeld(src.Sharding())
	}
	h := *held
	h.Keep(part.OwnsShard)
	tables, err := src.ReadShards(ctx, h.Missing(part.OwnsShard))
	if err != nil {
		return nil, err
	}
	return tables, h.Add(tables)
}
