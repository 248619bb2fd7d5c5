// Package bench is dmlrun's benchmark harness.
//
// AllReduce runs an nccl-tests style sweep: it starts one worker process per
// rank (the same launcher and data plane as a training job), allreduces
// vectors of growing size, checks every element of every result, and reports
// per size the time of the slowest rank, algbw = bytes/time and busbw = algbw
// x 2(n-1)/n (GB = 1e9 bytes):
//
//	dmlrun bench allreduce -np 4 -min-bytes 8 -max-bytes 64M -dtype float32
package bench
