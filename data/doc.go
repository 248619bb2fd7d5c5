// Package data reads training data for dmlrun: CSV, LIBSVM and Parquet
// files (one file, a directory of part files, globs, gzip) and a built-in
// synthetic generator, cut into V virtual shards that nodes own whole. It
// knows nothing about models or networks; a node that shares the work of
// indexing with others hands in a function that sums a vector over them.
//
// # Reading a node's share
//
//	src, err := data.Open(ctx, data.Spec{Paths: []string{"out/part-*.csv"}, Label: "y",
//		Rank: rank, Nodes: n, Exchange: allreduceSum}) // the nodes index together
//	part := src.Sharding().Spread(names)[rank]        // this node's shards
//	held, err := data.ReadPart(ctx, src, part)        // parse only those
//
// Opening indexes the data set: a byte-level pass (each node over its
// segment of the bytes) finds where rows start, and the offset of every
// shard's first row is kept for the run. ReadShards parses the byte ranges of
// the shards asked for, GOMAXPROCS goroutines at a time, into one [Table]
// per shard, sized exactly. After the ring changes, [Held.Keep] drops the
// shards a node no longer owns and [Held.Missing] names the ones to read.
//
// # Batches
//
// A [Schedule] yields the global batch of every step: a permutation of all
// rows drawn from (seed, epoch), cut into batches of B rows (B = 0: full
// batch). [Held.Batch] picks a node's rows of a batch, shard by shard in row
// order, the order in which gradients are summed. None of this depends on
// the number of nodes, so the sum over nodes is always the gradient of the
// whole batch. A [Resampler] replaces the permutation by a class-balanced
// sequence (over- or under-sampling) drawn from (seed, epoch) and the
// allreduced class counts of every shard ([ShardClassCounts]), the same for
// any number of nodes.
//
// # Labels and standardization
//
// Labels are the target (regression) or a class index; Table.PrepareLabels
// checks them and maps binary -1/+1 to 0/1. Standardization takes one
// allreduce of Table.AddMoments summed over a node's tables; MeanStd and
// Table.Standardize finish it.
package data
