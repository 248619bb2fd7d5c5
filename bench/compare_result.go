package bench

// The result model of a comparison: what was measured per process count,
// size and system (the best of the rounds), every run's record, and the
// ratios that the table shows. Pure data and arithmetic: no processes.

import "slices"

// Comparison is the outcome of Compare: every number behind the table.
type Comparison struct {
	Options CompareOptions `json:"options"`
	Systems []SystemStatus `json:"systems"` // dmlrun, mpi, gloo
	Blocks  []CompareBlock `json:"blocks"`  // one per n, in Options.NPs order
}

// SystemStatus says whether a system was measured, and how.
type SystemStatus struct {
	Name      string   `json:"name"`
	Available bool     `json:"available"`
	Version   string   `json:"version,omitempty"`
	Argv      []string `json:"argv,omitempty"` // how one run is started ("N" stands for the process count)
	// Note says why an unavailable system was skipped: "not installed: ..."
	// or what failed while preparing it.
	Note string `json:"note,omitempty"`
}

// CompareBlock holds the results for one process count.
type CompareBlock struct {
	NP   int          `json:"np"`
	Rows []CompareRow `json:"rows"` // one per size of the sweep
	Runs []RunRecord  `json:"runs"` // every run, in the order they ran
}

// CompareRow is one size: each system's best over the rounds.
type CompareRow struct {
	Bytes   int64                   `json:"size_bytes"`
	Systems map[string]*Measurement `json:"systems"` // by system name; absent: never measured
	// Ratio is dmlrun's best busbw over each peer's best busbw (above 1:
	// dmlrun is faster), for the peers measured at this size.
	Ratio map[string]float64 `json:"dmlrun_ratio,omitempty"`
}

// Measurement is one system at one n and size, over the rounds. Rounds with
// wrong elements count in Wrong and AllBusBW but not in the best figures.
type Measurement struct {
	BusBW    float64   `json:"busbw_gbs"` // highest of the correct rounds
	TimeUS   float64   `json:"time_us"`   // lowest mean time per allreduce of the correct rounds
	Rounds   int       `json:"rounds"`    // correct rounds
	Wrong    int64     `json:"wrong"`     // wrong elements, summed over all rounds
	AllBusBW []float64 `json:"all_busbw_gbs"`
}

// RunRecord is one run of one system.
type RunRecord struct {
	System  string  `json:"system"`
	Round   int     `json:"round"`
	Seconds float64 `json:"seconds"`
	Sizes   int     `json:"sizes"`           // sizes it reported
	Error   string  `json:"error,omitempty"` // why it failed, with the end of its stderr
}

// add folds one round's row into m.
func (m *Measurement) add(r Row) {
	m.AllBusBW = append(m.AllBusBW, r.BusBW)
	if r.Wrong != 0 {
		m.Wrong += r.Wrong
		return
	}
	if m.Rounds == 0 || r.BusBW > m.BusBW {
		m.BusBW = r.BusBW
	}
	if m.Rounds == 0 || r.TimeUS < m.TimeUS {
		m.TimeUS = r.TimeUS
	}
	m.Rounds++
}

// newBlock makes the empty block for n processes over sizes.
func newBlock(n int, sizes []int64) CompareBlock {
	b := CompareBlock{NP: n, Rows: make([]CompareRow, len(sizes))}
	for i, s := range sizes {
		b.Rows[i] = CompareRow{Bytes: s, Systems: map[string]*Measurement{}}
	}
	return b
}

// add folds one run's rows into the block; rows of sizes outside the sweep
// are ignored (the runners reject them first).
func (b *CompareBlock) add(system string, rows []Row) {
	for _, r := range rows {
		i := slices.IndexFunc(b.Rows, func(cr CompareRow) bool { return cr.Bytes == r.Bytes })
		if i < 0 {
			continue
		}
		m := b.Rows[i].Systems[system]
		if m == nil {
			m = &Measurement{}
			b.Rows[i].Systems[system] = m
		}
		m.add(r)
	}
}

// finish computes the ratios.
func (b *CompareBlock) finish() {
	for i := range b.Rows {
		r := &b.Rows[i]
		r.Ratio = nil
		d := r.Systems[SystemDMLRun]
		if d == nil || d.Rounds == 0 {
			continue
		}
		for name, m := range r.Systems {
			if name == SystemDMLRun || m.Rounds == 0 || m.BusBW <= 0 {
				continue
			}
			if r.Ratio == nil {
				r.Ratio = map[string]float64{}
			}
			r.Ratio[name] = d.BusBW / m.BusBW
		}
	}
}
