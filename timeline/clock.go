package timeline

import (
	"fmt"
	"slices"
)

// ClockOffsets turns clock readings taken by every rank at the same
// moments (readings[r][k]: rank r's clock, in nanoseconds, as it left the
// k-th barrier of a ring) into each rank's offset to the anchor rank's
// clock: the median over rounds of readings[r][k] - readings[anchor][k].
// Subtracting its offset from a rank's timestamps puts them on the
// anchor's clock. The median drops rounds in which one rank was late out
// of a barrier (it was descheduled, say); the anchor's own offset is 0.
func ClockOffsets(readings [][]int64, anchor int) ([]int64, error) {
	if anchor < 0 || anchor >= len(readings) {
		return nil, fmt.Errorf("clock offsets: anchor rank %d of %d", anchor, len(readings))
	}
	k := len(readings[anchor])
	if k == 0 {
		return nil, fmt.Errorf("clock offsets: no rounds")
	}
	out := make([]int64, len(readings))
	d := make([]int64, k)
	for r, row := range readings {
		if len(row) != k {
			return nil, fmt.Errorf("clock offsets: rank %d has %d readings, rank %d has %d", r, len(row), anchor, k)
		}
		for i := range row {
			d[i] = row[i] - readings[anchor][i]
		}
		out[r] = median(d)
	}
	return out, nil
}

// median sorts v and returns its middle value (for an even count, the
// mean of the two middle ones, in integer nanoseconds).
func median(v []int64) int64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	a, b := v[n/2-1], v[n/2]
	return a + (b-a)/2
}
