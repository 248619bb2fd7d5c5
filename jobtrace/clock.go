package jobtrace

import (
	"context"
	"fmt"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/timeline"
)

// clockRounds is how many barriers AlignClocks reads the clocks after; the
// offset is the median over them.
const clockRounds = 5

// clockWords is what each rank contributes to AlignClocks' allgather:
// whether an earlier ring aligned it, its shift, and its readings (each
// int64 as two exact float64 halves).
const clockWords = 3 + 2*clockRounds

// AlignClocks puts every member of a newly formed ring on one trace clock.
// It must run on every member whenever any of them records a timeline,
// recording or not (r nil), so that the ring's collectives stay in step:
// the caller decides it alike everywhere, say by a Max allreduce of
// Recording(). It does clockRounds times, a barrier and then each rank
// reads its clock; one allgather brings every rank all readings. A rank's
// offset is the median of its readings minus the anchor's
// (timeline.ClockOffsets), the anchor being the lowest rank that an
// earlier ring aligned (whose shift carries the trace clock of the first
// ring over to this one), or, in a job's first ring, rank 0, the moment it
// opened its part becoming time 0 (every node's events come later: they
// follow a ring formation, which needs rank 0 running). On one host the
// offsets come out at the scale of a barrier's skew, microseconds.
func AlignClocks(ctx context.Context, c *elastic.Comm, r *Recorder) error {
	start := time.Now()
	r.setQuiet(true)
	defer r.setQuiet(false)
	n, me := c.Size(), c.Rank()
	v := make([]float64, n*clockWords)
	mine := v[me*clockWords : (me+1)*clockWords]
	_, shift, known := r.clock()
	if known {
		mine[0] = 1
	}
	putInt64(mine[1:3], shift)
	for k := range clockRounds {
		if err := c.Barrier(ctx); err != nil {
			return fmt.Errorf("aligning clocks for the timeline (round %d): %w", k+1, err)
		}
		now, _, _ := r.clock()
		putInt64(mine[3+2*k:5+2*k], now)
	}
	if err := c.AllGather(ctx, v); err != nil {
		return fmt.Errorf("aligning clocks for the timeline: %w", err)
	}
	readings := make([][]int64, n)
	anchor := -1
	for q := range n {
		w := v[q*clockWords : (q+1)*clockWords]
		if anchor < 0 && w[0] == 1 {
			anchor = q
		}
		readings[q] = make([]int64, clockRounds)
		for k := range readings[q] {
			readings[q][k] = getInt64(w[3+2*k : 5+2*k])
		}
	}
	anchor = max(anchor, 0)
	base := getInt64(v[anchor*clockWords+1 : anchor*clockWords+3]) // where trace time 0 lies on the anchor's clock
	off, err := timeline.ClockOffsets(readings, anchor)
	if err != nil {
		return err
	}
	r.setClock(base+off[me], off[me], anchor, c, start)
	return nil
}

// putInt64 stores x in two float64s exactly (an allreduce moves floats):
// the high bits and the low 26.
func putInt64(dst []float64, x int64) {
	dst[0], dst[1] = float64(x>>26), float64(x&(1<<26-1))
}

func getInt64(src []float64) int64 { return int64(src[0])<<26 | int64(src[1]) }
