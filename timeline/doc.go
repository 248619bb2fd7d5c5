// Package timeline writes Chrome traces (the Trace Event Format that
// chrome://tracing and https://ui.perfetto.dev open): one part file per
// process, streamed while the process runs, and Merge, which joins the
// parts of a job into one trace.
//
// A part is valid JSON after every Flush: the writer keeps a trailer after
// the last event and overwrites it with the next events and a new trailer
// in one write, so a process killed at any moment leaves a part that ends
// at its last flush (or, if the kill tore that write, one line of it that
// Merge drops). One event per line:
//
//	{"traceEvents":[
//	{"ph":"M","pid":2,"tid":0,"name":"process_name","args":{"name":"rank 2 (host b, slot 0)"}},
//	{"ph":"X","pid":2,"tid":1,"name":"compute","ts":1520.250,"dur":88.125,"args":{"step":1}}
//	],"displayTimeUnit":"ms"}
//
// Timestamps are int64 nanoseconds on the caller's clock, written as
// microseconds with three decimals. Appending an event allocates nothing:
// the writer formats into a buffer allocated once, so that a training
// step can record its events and stay allocation-free.
//
// Usage:
//
//	w, err := timeline.Create("trace.json.parts/rank-2.json")
//	w.SetPID(2)
//	w.Meta(0, "process_name").Str("name", "rank 2 (host b, slot 0)").Done()
//	w.Complete(1, "compute", start, dur).Int("step", 7).Done()
//	err = w.Flush() // at a step boundary; Close flushes too
//	...
//	stats, err := timeline.Merge("trace.json", parts)
package timeline
