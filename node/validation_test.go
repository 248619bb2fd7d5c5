package node

import (
	"math"
	"testing"
)

// The validation split is a function of (seed, row): about the fraction of
// rows, the same for every caller, and another split for another seed.
func TestValidationSplit(t *testing.T) {
	const rows = 200000
	for _, f := range []float64{0.05, 0.2, 0.5} {
		n, other := 0, 0
		for r := range rows {
			if isValidation(7, r, f) {
				n++
				if isValidation(7, r, f) != true {
					t.Fatal("not deterministic")
				}
			}
			if isValidation(7, r, f) != isValidation(8, r, f) {
				other++
			}
		}
		if got := float64(n) / rows; math.Abs(got-f) > 0.01 {
			t.Errorf("fraction %v: %v of the rows held out", f, got)
		}
		if other == 0 {
			t.Errorf("fraction %v: seeds 7 and 8 give the same split", f)
		}
	}
	if isValidation(1, 5, 0) {
		t.Error("fraction 0 held a row out")
	}
}
