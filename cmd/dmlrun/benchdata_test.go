package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchData: `dmlrun bench data -np 3` loads a CSV as a job would and
// prints a row per node (rows, load time, MB/s, peak memory against the
// bound, takeover), then pandas' time or why there is none.
func TestBenchData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.csv")
	var b strings.Builder
	b.WriteString("a,b,y\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "%d.5,%d,%d\n", i, -i, i%2)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	cfg := jobConfig(t, dir, "model: {kind: logistic}\ndata: {train: "+path+"}\n")
	out, errOut, err := dmlrun(t, time.Minute, "bench", "data", "-np", "3", cfg)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 10 && f[0] >= "0" && f[0] <= "2" {
			rows++
			if f[7] != "yes" {
				t.Errorf("node over the memory bound: %s", line)
			}
		}
	}
	if rows != 3 || !strings.Contains(out, "slowest node loaded its rows") || !strings.Contains(out, "pandas") {
		t.Fatalf("want a row for each of 3 nodes, the slowest, and pandas:\n%s", out)
	}
}
