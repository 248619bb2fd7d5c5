// Package bench is dmlrun's benchmark harness.
//
// AllReduce runs an nccl-tests style sweep: it starts one worker process per
// rank (the same launcher and data plane as a training job), allreduces
// vectors of growing size, checks every element of every result, and reports
// per size the time of the slowest rank, algbw = bytes/time and busbw = algbw
// x 2(n-1)/n (GB = 1e9 bytes):
//
//	dmlrun bench allreduce -np 4 -min-bytes 8 -max-bytes 64M -dtype float32
//
// Compare runs that sweep against Open MPI and torch's gloo, where installed,
// and prints one table of the best of interleaved rounds:
//
//	dmlrun bench compare -np 2,4
//
// The sweep's ranks are launch processes like a training job's nodes:
// launch.RunJob starts them (locally or over ssh), runs the rendezvous of
// their data-plane addresses, streams rank 0's rows back (NodeReport.Part)
// and supervises them, so that a failed rank fails the sweep with the same
// root-cause message (and exit status) as a failed node; the worker side is
// launch.Worker. bench imports launch, node, ring and transport, all of
// which come before it in DESIGN.md's layout, and nothing imports bench but
// cmd/dmlrun.
//
// Files: allreduce.go (options, rows, the launcher side of a sweep),
// worker.go (one rank), compare.go (Compare's run loop), compare_options.go,
// compare_result.go (the result model), compare_parse.go (a peer's output),
// compare_systems.go (finding and preparing the peers), compare_exec.go
// (running one peer program), compare_table.go (the table).
package bench
