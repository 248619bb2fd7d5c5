package node

import (
	"slices"
	"time"
)

// StepStats records how each step's time splits between local compute and
// the allreduce, in buffers sized up front so the step loop allocates
// nothing.
type StepStats struct {
	Compute, AllReduce []time.Duration
	Samples            int64         // rows processed by the whole cluster
	Wall               time.Duration // the step loop's wall time
}

func newStepStats(steps int) *StepStats {
	return &StepStats{Compute: make([]time.Duration, 0, steps), AllReduce: make([]time.Duration, 0, steps)}
}

func (s *StepStats) add(compute, allreduce time.Duration) {
	if len(s.Compute) < cap(s.Compute) {
		s.Compute = append(s.Compute, compute)
		s.AllReduce = append(s.AllReduce, allreduce)
	}
}

// Summary is a StepStats boiled down for a report.
type Summary struct {
	Steps             int     `json:"steps"`
	SamplesPerSec     float64 `json:"samples_per_sec"`
	StepMedianUS      float64 `json:"step_median_us"`
	ComputeMedianUS   float64 `json:"compute_median_us"`
	ComputeP99US      float64 `json:"compute_p99_us"`
	AllReduceMedianUS float64 `json:"allreduce_median_us"`
	AllReduceP99US    float64 `json:"allreduce_p99_us"`
}

// Summarize computes medians and 99th percentiles.
func (s *StepStats) Summarize() Summary {
	q := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		c := slices.Clone(d)
		slices.Sort(c)
		return float64(c[min(len(c)-1, int(p*float64(len(c))))]) / 1e3
	}
	total := make([]time.Duration, len(s.Compute))
	for i := range total {
		total[i] = s.Compute[i] + s.AllReduce[i]
	}
	sum := Summary{Steps: len(s.Compute), StepMedianUS: q(total, 0.5),
		ComputeMedianUS: q(s.Compute, 0.5), ComputeP99US: q(s.Compute, 0.99),
		AllReduceMedianUS: q(s.AllReduce, 0.5), AllReduceP99US: q(s.AllReduce, 0.99)}
	if s.Wall > 0 {
		sum.SamplesPerSec = float64(s.Samples) / s.Wall.Seconds()
	}
	return sum
}
