package plots

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// Log axes here are linear axes over log10 (or log2) of the values, with
// ticks labelled in the values themselves: the same picture as gonum's
// LogScale, but LogScale places an axis label's glyph box at the arithmetic
// midpoint of the range, near one end on a log axis, which pads the plot by
// the label's length; and it panics on a value that is not positive.

// decadeTicks marks an axis of log10 values: a labelled tick at every
// power of ten in range, unlabelled ones at 2..9 times it.
type decadeTicks struct{}

// Ticks implements plot.Ticker.
func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	if !finite(lo) || !finite(hi) || hi < lo || hi-lo > 400 {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(lo); e <= hi; e++ {
		for k := 1.0; k < 10; k++ {
			v := e + math.Log10(k)
			if v < lo-1e-9 || v > hi+1e-9 {
				continue
			}
			t := plot.Tick{Value: v}
			if k == 1 {
				t.Label = strconv.FormatFloat(math.Pow(10, e), 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// decadeRange is the range of a log10 axis over values from lo to hi
// (0 < lo <= hi): whole decades, at least one, so that at least two ticks
// are labelled.
func decadeRange(lo, hi float64) (float64, float64) {
	a, b := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if b <= a {
		b = a + 1
	}
	return a, b
}

// byteTicks marks an axis of log2 sizes in bytes at powers of two: labelled
// ones ("8 B", "4 KiB", "16 MiB") every k-th power, k chosen so that at most
// 9 are labelled, and unlabelled ones at the powers between.
type byteTicks struct{}

// Ticks implements plot.Ticker.
func (byteTicks) Ticks(lo, hi float64) []plot.Tick {
	if !finite(lo) || !finite(hi) || hi < lo || hi-lo > 400 {
		return nil
	}
	first, last := int(math.Ceil(lo)), int(math.Floor(hi))
	k := max(1, (last-first)/9+1)
	var ticks []plot.Tick
	for e := first; e <= last; e++ {
		t := plot.Tick{Value: float64(e)}
		if e%k == 0 {
			t.Label = byteLabel(e)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// byteLabel is 2^e bytes in binary units: 512 B, 4 KiB, 1 GiB. Negative e
// (fractions of a byte) do not occur for sizes, but are labelled as numbers.
func byteLabel(e int) string {
	if e < 0 {
		return strconv.FormatFloat(math.Exp2(float64(e)), 'g', -1, 64)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := min(e/10, len(units)-1)
	return strconv.FormatFloat(math.Exp2(float64(e-10*u)), 'f', -1, 64) + " " + units[u]
}
