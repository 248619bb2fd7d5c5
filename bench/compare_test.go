package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestParsePeerLine(t *testing.T) {
	r, ok, err := parsePeerLine("     8388608      2097152      6761.71     1.2406     1.2406        3")
	if err != nil || !ok {
		t.Fatalf("ok %v, err %v", ok, err)
	}
	want := Row{Bytes: 8388608, Count: 2097152, Type: "float32", Op: "sum", TimeUS: 6761.71, AlgBW: 1.2406, BusBW: 1.2406, Wrong: 3}
	if r != want {
		t.Fatalf("parsed %+v, want %+v", r, want)
	}

	for _, skip := range []string{
		"", "   ", "# Open MPI allreduce: 2 ranks", "#      bytes        count      time_us",
		"WARNING: There was an error initializing an OpenFabrics device.",
		"[vm:01134] select: component ob1 selected",
	} {
		if _, ok, err := parsePeerLine(skip); ok || err != nil {
			t.Errorf("%q: ok %v, err %v; want it skipped", skip, ok, err)
		}
	}

	for _, tc := range []struct{ line, want string }{
		{"8 2 8.79 0.0009 0.0009", "5 fields"},
		{"8 2 8.79 0.0009 0.0009 0 7", "7 fields"},
		{"8 2 8.79 0.0009 0.0009 x", "field 6 is not a count"},
		{"8 2.5 8.79 0.0009 0.0009 0", "field 2 is not a count"},
		{"8 2 fast 0.0009 0.0009 0", "field 3 is not a number"},
		{"8 2 8.79 NaN 0.0009 0", "field 4 is not a number"},
		{"8 2 8.79 0.0009 -1 0", "field 5 is not a number"},
		{"8 3 8.79 0.0009 0.0009 0", "8 bytes is not 3 float32 elements"},
		{"0 0 8.79 0.0009 0.0009 0", "0 bytes is not 0 float32 elements"},
		{"8 2 0 0.0009 0.0009 0", "time is not positive"},
	} {
		_, ok, err := parsePeerLine(tc.line)
		if ok || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.line) {
			t.Errorf("%q: ok %v, err %v; want an error quoting the line and mentioning %q", tc.line, ok, err, tc.want)
		}
	}
}

func TestParsePeerOutput(t *testing.T) {
	sizes := []int64{8, 32, 128}
	out := "# header\n" +
		"Some chatter from mpirun\n" +
		"           8            2         8.79     0.0009     0.0009        0\n" +
		"          32            8         8.78     0.0036     0.0036        0\n" +
		"         128           32        14.89     0.0086     0.0086        0\n"
	rows, err := parsePeerOutput([]byte(out), sizes)
	if err != nil || len(rows) != 3 || rows[2].Bytes != 128 {
		t.Fatalf("rows %+v, err %v", rows, err)
	}

	// Cut short: the rows so far, and an error.
	rows, err = parsePeerOutput([]byte(strings.Join(strings.Split(out, "\n")[:4], "\n")), sizes)
	if len(rows) != 2 || err == nil || !strings.Contains(err.Error(), "reported 2 of 3 sizes") {
		t.Fatalf("rows %+v, err %v", rows, err)
	}
	// A size that is not the next of the sweep.
	_, err = parsePeerOutput([]byte("8 2 1 1 1 0\n128 32 1 1 1 0\n"), sizes)
	if err == nil || !strings.Contains(err.Error(), "reported size 128 bytes after 1 rows") {
		t.Fatalf("err %v", err)
	}
	// Too many rows.
	_, err = parsePeerOutput([]byte(out+"512 128 1 1 1 0\n"), sizes)
	if err == nil || !strings.Contains(err.Error(), "reported size 512 bytes after 3 rows") {
		t.Fatalf("err %v", err)
	}
}

func TestMeasurementBestOf(t *testing.T) {
	var m Measurement
	m.add(Row{BusBW: 1.0, TimeUS: 100})
	m.add(Row{BusBW: 3.0, TimeUS: 40, Wrong: 5}) // wrong: not a candidate
	m.add(Row{BusBW: 2.0, TimeUS: 50})
	m.add(Row{BusBW: 1.5, TimeUS: 70})
	if m.BusBW != 2.0 || m.TimeUS != 50 || m.Rounds != 3 || m.Wrong != 5 {
		t.Fatalf("best of rounds: %+v", m)
	}
	if len(m.AllBusBW) != 4 || m.AllBusBW[1] != 3.0 {
		t.Fatalf("all rounds: %v", m.AllBusBW)
	}

	// A lone round is the best however slow it is: the zero value is no
	// candidate.
	var first Measurement
	first.add(Row{BusBW: 0.001, TimeUS: 9000})
	if first.BusBW != 0.001 || first.TimeUS != 9000 {
		t.Fatalf("first round: %+v", first)
	}
}

func TestBlockBestAndRatios(t *testing.T) {
	b := newBlock(2, []int64{8, 32, 128})
	// Three rounds, interleaved as Compare runs them; mpi missed 128 in the
	// last round (cut short) and gloo never measured anything.
	b.add(SystemDMLRun, []Row{{Bytes: 8, BusBW: 0.001, TimeUS: 8}, {Bytes: 32, BusBW: 0.004, TimeUS: 8}, {Bytes: 128, BusBW: 0.010, TimeUS: 12.8}})
	b.add(SystemMPI, []Row{{Bytes: 8, BusBW: 0.0005, TimeUS: 16}, {Bytes: 32, BusBW: 0.002, TimeUS: 16}, {Bytes: 128, BusBW: 0.020, TimeUS: 6.4}})
	b.add(SystemDMLRun, []Row{{Bytes: 8, BusBW: 0.002, TimeUS: 4}, {Bytes: 32, BusBW: 0.003, TimeUS: 10.7}, {Bytes: 128, BusBW: 0.004, TimeUS: 32}})
	b.add(SystemMPI, []Row{{Bytes: 8, BusBW: 0.0008, TimeUS: 10}, {Bytes: 32, BusBW: 0.001, TimeUS: 32}})
	b.add(SystemMPI, []Row{{Bytes: 4096, BusBW: 1, TimeUS: 1}}) // not in the sweep: ignored
	b.finish()

	d8, m8 := b.Rows[0].Systems[SystemDMLRun], b.Rows[0].Systems[SystemMPI]
	if d8.BusBW != 0.002 || d8.TimeUS != 4 || d8.Rounds != 2 || m8.BusBW != 0.0008 || m8.TimeUS != 10 || m8.Rounds != 2 {
		t.Fatalf("8 B: dmlrun %+v, mpi %+v", d8, m8)
	}
	if got := b.Rows[0].Ratio[SystemMPI]; got != 2.5 {
		t.Fatalf("8 B dmlrun/mpi = %v, want 2.5", got)
	}
	if m := b.Rows[2].Systems[SystemMPI]; m.Rounds != 1 || m.BusBW != 0.020 {
		t.Fatalf("128 B mpi: %+v", m)
	}
	if got := b.Rows[2].Ratio[SystemMPI]; got != 0.5 {
		t.Fatalf("128 B dmlrun/mpi = %v, want 0.5", got)
	}
	if _, ok := b.Rows[0].Ratio[SystemGloo]; ok || b.Rows[0].Systems[SystemGloo] != nil {
		t.Fatal("gloo has a figure although it never ran")
	}
}

func TestNearestSize(t *testing.T) {
	sizes := []int64{8, 32, 128, 512, 2048, 8192, 32768, 131072, 524288, 2097152, 8388608, 33554432}
	for _, tc := range []struct{ target, want int64 }{
		{16 << 20, 33554432}, // 8M and 32M are equally far: the larger
		{8, 8},
		{4, 8},
		{1 << 40, 33554432},
		{100, 128},
	} {
		if got := nearestSize(sizes, tc.target); got != tc.want {
			t.Errorf("nearest to %d: %d, want %d", tc.target, got, tc.want)
		}
	}
	if got := nearestSize(sizes[:11], 16<<20); got != 8388608 {
		t.Errorf("up to 8M, nearest to 16M: %d", got)
	}
	if got := nearestSize(nil, 8); got != 0 {
		t.Errorf("empty: %d", got)
	}
}

func TestNPList(t *testing.T) {
	var l NPList
	if err := l.Set("2, 4,8"); err != nil || l.String() != "2,4,8" {
		t.Fatalf("%v, %v", l, err)
	}
	for _, bad := range []string{"", "2,", "0", "-1", "two", "2;4"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCompareOptionsValidate(t *testing.T) {
	o := DefaultCompareOptions()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*CompareOptions)
		want string
	}{
		{func(o *CompareOptions) { o.NPs = nil }, "at least one process count"},
		{func(o *CompareOptions) { o.NPs = NPList{2, 2000} }, "-np 2000"},
		{func(o *CompareOptions) { o.Rounds = 0 }, "-rounds 0"},
		{func(o *CompareOptions) { o.Factor = 1 }, "-factor 1"},
		{func(o *CompareOptions) { o.MinBytes, o.MaxBytes = 1<<20, 1<<10 }, "below -min-bytes"},
		{func(o *CompareOptions) { o.Iters = 0 }, "-iters 0"},
		{func(o *CompareOptions) { o.Timeout = -1 }, "-timeout"},
	} {
		o := DefaultCompareOptions()
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error mentioning %q", err, tc.want)
		}
	}
}

// TestWriteTable checks the layout on a made-up comparison: a column per
// peer, "-" where nothing was measured, the summary lines and the failures;
// and that the Comparison survives JSON.
func TestWriteTable(t *testing.T) {
	o := DefaultCompareOptions()
	o.NPs, o.MaxBytes = NPList{2}, 32<<20
	ar := o.allReduce(2)
	b := newBlock(2, ar.sizes())
	var d, m []Row
	for _, s := range ar.sizes() {
		d = append(d, Row{Bytes: s, BusBW: float64(s) / 1e7, TimeUS: 5 + float64(s)/1e4})
		m = append(m, Row{Bytes: s, BusBW: float64(s) / 2e7, TimeUS: 10 + float64(s)/5e3})
	}
	m[0].Wrong = 2
	b.add(SystemDMLRun, d)
	b.add(SystemMPI, m)
	b.Runs = []RunRecord{{System: SystemDMLRun, Round: 1, Seconds: 1}, {System: SystemMPI, Round: 1, Seconds: 2, Error: "mpirun: exit status 1; its stderr ends:\n    boom"}}
	b.finish()
	c := &Comparison{Options: o, Blocks: []CompareBlock{b}, Systems: []SystemStatus{
		{Name: SystemDMLRun, Available: true, Argv: []string{"dmlrun", "bench", "worker"}},
		{Name: SystemMPI, Available: true, Version: "mpirun (Open MPI) 4.1.4", Argv: []string{"mpirun", "-np", "N"}},
		{Name: SystemGloo, Note: "not installed (no torch)"},
	}}
	var out bytes.Buffer
	c.WriteTable(&out)
	text := out.String()
	for _, want := range []string{
		"#   size(B)  dmlrun busbw   mpi busbw  gloo busbw  dmlrun/mpi  dmlrun/gloo   dmlrun us      mpi us     gloo us",
		"# gloo:   not installed (no torch)",
		"# mpi:    mpirun (Open MPI) 4.1.4: mpirun -np N",
		"          8         8e-07           !           -           -            -         5.0           !           -",
		"   33554432         3.355       1.678           -        2.00            -      3360.4      6720.9           -",
		"# n=2 summary at 32M (nearest to 16M): dmlrun 3.355 GB/s 3360 us; mpi 1.678 GB/s 6721 us (dmlrun/mpi 2.00x); gloo -",
		"# n=2 summary at 8: dmlrun 8e-07 GB/s 5.001 us; mpi wrong results; gloo -",
		"# n=2 round 1: mpi failed after 2.0s: mpirun: exit status 1; its stderr ends:\n#       boom",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Comparison
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Blocks[0].Rows[len(ar.sizes())-1].Ratio[SystemMPI]; got != 2 {
		t.Fatalf("ratio after JSON: %v", got)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 64}
	for i := range 100 {
		tb.Write([]byte(strings.Repeat("x", i%7) + "line\n"))
	}
	tb.Write([]byte("----------\nlast words\n"))
	got := tb.tail(2)
	if !strings.HasSuffix(got, "    last words") || strings.Count(got, "\n") != 1 || strings.Contains(got, "-----") {
		t.Fatalf("tail %q", got)
	}
}
