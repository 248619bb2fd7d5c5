package bench

import (
	"fmt"

	"github.com/dmlrun/dmlrun/plots"
)

// PlotPNG draws the sweep's bus bandwidth against message size as a PNG:
// one line, "dmlrun n=N". Sizes with wrong elements are left out.
func (r *Result) PlotPNG() ([]byte, error) {
	o := r.Options
	title := fmt.Sprintf("dmlrun allreduce bus bandwidth: %d ranks, %s %s, algorithm %s", r.NP, o.DType, o.Op, o.Algorithm)
	return plots.Bandwidth{Title: title, Series: []plots.Series{r.busBWSeries()}}.PNG()
}

func (r *Result) busBWSeries() plots.Series {
	s := plots.Series{Name: fmt.Sprintf("dmlrun n=%d", r.NP)}
	for _, row := range r.Rows {
		if row.Wrong == 0 {
			s.Bytes, s.BusBW = append(s.Bytes, row.Bytes), append(s.BusBW, row.BusBW)
		}
	}
	return s
}

// PlotPNG draws every system's best bus bandwidth against message size as
// a PNG: one line per system measured and process count ("Open MPI n=4"),
// dmlrun first. Sizes without a correct round are left out.
func (c *Comparison) PlotPNG() ([]byte, error) {
	title := fmt.Sprintf("allreduce bus bandwidth, float32 sum: best of %d interleaved rounds", c.Options.Rounds)
	return plots.Bandwidth{Title: title, Series: c.busBWSeries()}.PNG()
}

func (c *Comparison) busBWSeries() []plots.Series {
	var series []plots.Series
	for _, sys := range c.Systems {
		if !sys.Available {
			continue
		}
		for _, b := range c.Blocks {
			s := plots.Series{Name: fmt.Sprintf("%s n=%d", systemLabel(sys.Name), b.NP)}
			for _, row := range b.Rows {
				if m := row.Systems[sys.Name]; m != nil && m.Rounds > 0 {
					s.Bytes, s.BusBW = append(s.Bytes, row.Bytes), append(s.BusBW, m.BusBW)
				}
			}
			if len(s.Bytes) > 0 {
				series = append(series, s)
			}
		}
	}
	return series
}

// systemLabel is how a plot names a system.
func systemLabel(name string) string {
	switch name {
	case SystemMPI:
		return "Open MPI"
	case SystemGloo:
		return "gloo"
	}
	return name
}
