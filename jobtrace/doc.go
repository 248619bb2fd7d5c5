// Package jobtrace records one node's part of an elastic job's timeline
// (`dmlrun -timeline FILE`): the compute of its steps, every collective
// and its phases (as the ring's Tracer), data loads, and the ring's
// failures, re-formations and recoveries, on a trace clock that
// AlignClocks makes common to the ring. The parts are timeline files;
// timeline.Merge joins them into one Chrome trace.
//
// Every method is safe on a nil *Recorder (no timeline), so a program
// calls its hooks unconditionally:
//
//	r, err := jobtrace.Start(jobtrace.Options{Part: "trace.json.parts/rank-2.json", PID: 2}, host, slot, log)
//	comm := ... // a ring whose Ring.Tracer is r.Tracer()
//	err = jobtrace.AlignClocks(ctx, comm, r) // on every member, when any records
//	r.Step(n, t0, t1, rows)                  // after each step's compute
//	r.RingFailed(time.Now(), cause, step)    // when the ring fails ...
//	r.RingReformed(failedAt, rank, size, step)
//	r.Recovered(step, size)                  // ... and after the new ring's first step
//	r.Close(runErr)
//
// Recording a step allocates nothing.
package jobtrace
