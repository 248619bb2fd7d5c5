// Package plots draws dmlrun's PNG figures with gonum.org/v1/plot: the
// training curves of a run (from its metrics.csv) and allreduce bus
// bandwidth against message size.
//
// A training plot, from a metrics.csv:
//
//	f, err := os.Open("runs/demo/metrics.csv")
//	...
//	rows, err := plots.ReadMetrics(f)
//	...
//	png, err := plots.Training{Title: "demo", Rows: rows}.PNG()
//	...
//	err = os.WriteFile("runs/demo/training.png", png, 0o644)
//
// A bandwidth plot, one line per system measured:
//
//	png, err := plots.Bandwidth{
//		Title: "allreduce, 2 ranks, float32 sum",
//		Series: []plots.Series{
//			{Name: "dmlrun", Bytes: []int64{8, 1024, 1 << 20}, BusBW: []float64{0.001, 0.1, 1.7}},
//			{Name: "Open MPI", Bytes: []int64{8, 1024, 1 << 20}, BusBW: []float64{0.001, 0.08, 1.3}},
//		},
//	}.PNG()
//
// Both return the encoded PNG, or an error when there is nothing to draw or
// the input is malformed; missing values (NaN, empty cells) are left out of
// the curves, not drawn as zero. The package imports no other dmlrun
// package.
package plots
