package bench

import (
	"bytes"
	"image/png"
	"reflect"
	"testing"

	"github.com/dmlrun/dmlrun/plots"
)

// TestComparisonSeries: one series per system measured and process count,
// dmlrun first; unavailable systems and sizes without a correct round are
// left out.
func TestComparisonSeries(t *testing.T) {
	c := &Comparison{
		Options: CompareOptions{Rounds: 2},
		Systems: []SystemStatus{{Name: SystemDMLRun, Available: true}, {Name: SystemMPI, Available: true}, {Name: SystemGloo}},
	}
	for _, n := range []int{2, 4} {
		b := newBlock(n, []int64{8, 64})
		b.add(SystemDMLRun, []Row{{Bytes: 8, BusBW: 0.001 * float64(n), TimeUS: 8}, {Bytes: 64, BusBW: 0.01, TimeUS: 8}})
		b.add(SystemMPI, []Row{{Bytes: 8, BusBW: 0.002, TimeUS: 9}, {Bytes: 64, BusBW: 0.02, TimeUS: 9, Wrong: 1}})
		c.Blocks = append(c.Blocks, b)
	}
	want := []plots.Series{
		{Name: "dmlrun n=2", Bytes: []int64{8, 64}, BusBW: []float64{0.002, 0.01}},
		{Name: "dmlrun n=4", Bytes: []int64{8, 64}, BusBW: []float64{0.004, 0.01}},
		{Name: "Open MPI n=2", Bytes: []int64{8}, BusBW: []float64{0.002}},
		{Name: "Open MPI n=4", Bytes: []int64{8}, BusBW: []float64{0.002}},
	}
	if got := c.busBWSeries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("series\n%+v\nwant\n%+v", got, want)
	}
	b, err := c.PlotPNG()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func TestResultSeries(t *testing.T) {
	r := &Result{NP: 3, Rows: []Row{{Bytes: 8, BusBW: 0.001}, {Bytes: 64, BusBW: 0.5, Wrong: 2}, {Bytes: 512, BusBW: 0.1}}}
	want := plots.Series{Name: "dmlrun n=3", Bytes: []int64{8, 512}, BusBW: []float64{0.001, 0.1}}
	if got := r.busBWSeries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("series %+v, want %+v", got, want)
	}
	if _, err := (&Result{NP: 2}).PlotPNG(); err == nil {
		t.Fatal("a sweep without rows plotted")
	}
}
