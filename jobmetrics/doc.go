// Package jobmetrics exports one training node's Prometheus metrics
// (`dmlrun node -metrics ADDR`): ring size, rank and epoch, steps, samples,
// step and allreduce times, loss and test metrics, recoveries by cause,
// bytes sent and received per peer (read from the transport's counters at
// scrape time), and the Go runtime's and the process's.
//
// Every hook is safe on a nil *Metrics (no -metrics), and Step, called
// once per training step, allocates nothing:
//
//	m, stop, err := jobmetrics.Start("127.0.0.1:9400", log) // serves /metrics
//	defer stop()
//	m.Ring(comm, comm.Epoch())                 // when a ring is formed
//	m.Step(done, start, allreduceTook, rows, loss)
//	m.Eval(metrics, regression)
//	m.Recovered(cause)                         // the ring re-formed after cause
//	m.Paused(sinceFailure)                     // at the new ring's first step
package jobmetrics
