// Package train holds what dmlrun trains: models with their losses and
// gradients, optimizers and metrics, over the tables of package data. It is
// pure computation: it knows nothing about networks. The node sums the
// vectors it produces across processes (allreduce) and feeds the sums back.
//
// # One training step
//
// Errors are ignored here for brevity.
//
//	part := src.Sharding().Spread(names)[rank]
//	held, _ := data.ReadPart(ctx, src, part)
//	m, _ := train.NewModel(train.ModelSpec{Kind: train.KindLogistic, L2: 1e-4}, len(src.FeatureNames()), 2)
//	opt, _ := train.NewOptimizer(train.OptimizerSpec{Kind: train.OptAdam, LR: 1e-3}, m.NumParams())
//	sched := data.NewSchedule(seed, src.Rows(), batchSize)
//	P := m.NumParams()
//	theta, g, v := make([]float64, P), make([]float64, P), make([]float64, P+2)
//	m.Init(theta)
//	var b data.Batch
//	for step := 0; step < steps; step++ {
//		_, _, batch := sched.Batch(step)
//		_ = held.Batch(batch, part.OwnsShard, &b)
//		clear(v)
//		for _, grp := range b.Groups { // shard by shard, in row order
//			v[P] += m.LossGrad(theta, grp.T, grp.Rows, v[:P]) // Σ gradients, Σ losses
//		}
//		v[P+1] = float64(b.Len()) // row count
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
// classification, with a [ClassReport] of per-class precision, recall and
// F1, macro-F1, the confusion matrix and (two classes) ROC AUC, all from
// counts, so they do not depend on the number of nodes.
//
// # Class weights
//
// ModelSpec.ClassWeight weighs each row's loss and gradient by its class
// ([BalancedWeights]: scikit-learn's "balanced"); the field's doc says what
// the step divides by.
package train
