// Package train holds what dmlrun trains: data readers, virtual shards and
// batches, models with their losses and gradients, optimizers and metrics.
// It is pure computation: it knows nothing about networks. The node sums the
// vectors it produces across processes (allreduce) and feeds the sums back.
//
// # Data
//
// OpenCSV, OpenLIBSVM and Synthetic give a [Table] holding only the rows a
// keep function selects, so each node parses only its own rows. Labels are the
// target (regression) or a class index; Table.PrepareLabels checks them and
// maps binary -1/+1 to 0/1. Standardization takes one allreduce of
// Table.Moments; MeanStd and Table.Standardize finish it.
//
// # Shards and batches
//
// The N rows are cut into V contiguous virtual shards (NewSharding, V =
// DefaultShards unless given, never more than N). Sharding.Part gives node r
// of n a contiguous run of shards balanced by rows. A [Schedule] yields the
// global batch of every step: a permutation of all rows drawn from (seed,
// epoch), cut into batches of B rows (B = 0: full batch). Part.LocalRows picks
// the node's rows of a batch in row order. None of this depends on n, so the
// sum over nodes is always the gradient of the whole batch.
//
// # One training step
//
// Errors are ignored here for brevity.
//
//	s := train.NewSharding(f.NumRows(), 0)
//	part := s.Part(rank, nodes)
//	t, _ := f.Read(part.Owns)
//	m, _ := train.NewModel(train.ModelSpec{Kind: train.KindLogistic, L2: 1e-4}, t.Features, 2)
//	if err := t.PrepareLabels(m.Task(), 2); err != nil { ... } // data.csv:17: label 3 ...
//	opt, _ := train.NewOptimizer(train.OptimizerSpec{Kind: train.OptAdam, LR: 1e-3}, m.NumParams())
//	sched := train.NewSchedule(seed, s.Rows(), batchSize)
//	P := m.NumParams()
//	theta, g, v := make([]float64, P), make([]float64, P), make([]float64, P+2)
//	m.Init(theta)
//	var local []int
//	for step := 0; step < steps; step++ {
//		_, _, batch := sched.Batch(step)
//		local, _ = part.LocalRows(t, batch, local)
//		clear(v)
//		v[P] = m.LossGrad(theta, t, local, v[:P]) // Σ gradients, Σ losses
//		v[P+1] = float64(len(local))              // row count
//		// allreduce(sum) v across nodes
//		for i := range g {
//			g[i] = v[i] / v[P+1]
//		}
//		loss := v[P]/v[P+1] + m.Regularize(theta, g)
//		opt.Step(theta, g)
//	}
//
// # Models
//
// Every [Model] keeps θ in one flat []float64 (layout in its doc). Per-row
// losses: linear (ŷ-y)², logistic binary cross-entropy, softmax
// cross-entropy; an mlp ends in one of those three heads. LossGrad and
// Optimizer.Step do not allocate. A Model is not safe for concurrent use.
// Model.Shape and LoadModel save and rebuild a model for prediction.
//
// # Metrics
//
// Evaluate writes sums (EvalLen long) that nodes allreduce; Finish turns them
// into [Metrics]: loss, MSE and R² for regression, loss and accuracy for
// classification.
package train
