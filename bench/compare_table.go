package bench

// The comparison table: a header naming the systems, a block per process
// count with a line per size, summary lines, and the failed runs.

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// nearestSize is the size in sizes closest to target on a log scale (the
// larger one on a tie), or 0 if sizes is empty.
func nearestSize(sizes []int64, target int64) int64 {
	best, bestD := int64(0), math.Inf(1)
	for _, s := range sizes {
		d := math.Abs(math.Log(float64(s) / float64(target)))
		if d < bestD-1e-9 || (math.Abs(d-bestD) <= 1e-9 && s > best) {
			best, bestD = s, d
		}
	}
	return best
}

// WriteTable prints the comparison: a header naming the systems, then one
// block per n with a line per size and summary lines at 16 MiB and 8 B (or
// the nearest sizes of the sweep).
func (c *Comparison) WriteTable(w io.Writer) {
	o := c.Options
	fmt.Fprintf(w, "# dmlrun bench compare: allreduce, float32, sum; best of %d interleaved rounds; %d iterations after %d warm-up per size\n",
		o.Rounds, o.Iters, o.Warmup)
	var peers []string
	for _, s := range c.Systems {
		if s.Name != SystemDMLRun {
			peers = append(peers, s.Name)
		}
		desc := strings.Join(s.Argv, " ")
		if s.Version != "" {
			desc = s.Version + ": " + desc
		}
		if !s.Available {
			desc = s.Note
			if s.Version != "" {
				desc = s.Version + ": " + desc
			}
		}
		fmt.Fprintf(w, "# %-7s %s\n", s.Name+":", desc)
	}
	fmt.Fprintf(w, "# busbw: GB/s (1e9 B/s), algbw x 2(n-1)/n, the highest of the rounds; us: mean time per allreduce, the lowest of the rounds\n")
	fmt.Fprintf(w, "# dmlrun/X: dmlrun's busbw over X's (above 1: dmlrun is faster); -: not measured; !: some rounds had wrong elements (left out)\n")

	hdr := []string{"size(B)", "dmlrun busbw"}
	for _, p := range peers {
		hdr = append(hdr, p+" busbw")
	}
	for _, p := range peers {
		hdr = append(hdr, "dmlrun/"+p)
	}
	hdr = append(hdr, "dmlrun us")
	for _, p := range peers {
		hdr = append(hdr, p+" us")
	}
	widths := make([]int, len(hdr))
	for i, h := range hdr {
		widths[i] = max(len(h), 10)
	}
	widths[0] = 11
	line := func(cells []string) {
		var sb strings.Builder
		for i, cell := range cells {
			if i > 0 {
				sb.WriteString("  ")
			}
			fmt.Fprintf(&sb, "%*s", widths[i], cell)
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
	systems := append([]string{SystemDMLRun}, peers...)
	for _, b := range c.Blocks {
		fmt.Fprintf(w, "\n# n=%d\n", b.NP)
		h := slices.Clone(hdr)
		h[0] = "#" + strings.Repeat(" ", max(0, widths[0]-1-len(h[0]))) + h[0]
		line(h)
		for _, r := range b.Rows {
			cells := []string{strconv.FormatInt(r.Bytes, 10)}
			for _, s := range systems {
				cells = append(cells, fmtMeasure(r.Systems[s], func(m *Measurement) string { return fmt.Sprintf("%.4g", m.BusBW) }))
			}
			for _, p := range peers {
				if v, ok := r.Ratio[p]; ok {
					cells = append(cells, fmt.Sprintf("%.2f", v))
				} else {
					cells = append(cells, "-")
				}
			}
			for _, s := range systems {
				cells = append(cells, fmtMeasure(r.Systems[s], func(m *Measurement) string { return fmt.Sprintf("%.1f", m.TimeUS) }))
			}
			line(cells)
		}
		sizes := make([]int64, len(b.Rows))
		for i, r := range b.Rows {
			sizes[i] = r.Bytes
		}
		var done []int64
		for _, target := range []int64{16 << 20, 8} {
			s := nearestSize(sizes, target)
			i := slices.IndexFunc(b.Rows, func(r CompareRow) bool { return r.Bytes == s })
			if i < 0 || slices.Contains(done, s) {
				continue
			}
			done = append(done, s)
			fmt.Fprintf(w, "# n=%d summary at %s\n", b.NP, summary(b.Rows[i], systems, s, target))
		}
		for _, run := range b.Runs {
			if run.Error != "" {
				msg := strings.ReplaceAll(run.Error, "\n", "\n#   ")
				fmt.Fprintf(w, "# n=%d round %d: %s failed after %.1fs: %s\n", b.NP, run.Round, run.System, run.Seconds, msg)
			}
		}
	}
}

// fmtMeasure formats m with f, "-" when there is no correct round, and a
// trailing "!" when some rounds were wrong.
func fmtMeasure(m *Measurement, f func(*Measurement) string) string {
	switch {
	case m == nil:
		return "-"
	case m.Rounds == 0:
		return "!"
	case m.Wrong > 0:
		return f(m) + "!"
	}
	return f(m)
}

// summary describes one row in a sentence.
func summary(r CompareRow, systems []string, size, target int64) string {
	var sb strings.Builder
	sb.WriteString(ByteSize(size).String())
	if size != target {
		fmt.Fprintf(&sb, " (nearest to %v)", ByteSize(target))
	}
	sb.WriteString(":")
	for i, s := range systems {
		if i > 0 {
			sb.WriteString(";")
		}
		m := r.Systems[s]
		if m == nil {
			fmt.Fprintf(&sb, " %s -", s)
			continue
		}
		if m.Rounds == 0 {
			fmt.Fprintf(&sb, " %s wrong results", s)
			continue
		}
		fmt.Fprintf(&sb, " %s %.4g GB/s %.4g us", s, m.BusBW, m.TimeUS)
		if v, ok := r.Ratio[s]; ok {
			fmt.Fprintf(&sb, " (dmlrun/%s %.2fx)", s, v)
		}
	}
	return sb.String()
}
