package node

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
)

// DataBench is what `dmlrun bench data` measures on one node: how long it
// took to have its rows (opening and indexing the data set with the other
// nodes, then parsing its shards), its peak memory, and how long it takes to
// read what it would gain if the last rank were lost.
type DataBench struct {
	Rank, Size   int
	Rows         int     // rows it holds
	FileBytes    int64   // bytes of the files its shards span (0 if unknown: Parquet, synthetic)
	DataBytes    int64   // bytes its rows take in memory
	LoadSec      float64 // from opening the data set to holding its rows
	PeakRSS      int64   // bytes, the process's high-water mark once loaded
	TakeoverRows int     // rows it reads when the last rank is lost (0 on that rank)
	TakeoverSec  float64
}

// benchData measures the data path instead of training (Options.DataBench),
// and ends the run.
func (t *trainer) benchData(ctx context.Context) error {
	c, d := t.comm(), t.data
	b := &DataBench{Rank: c.Rank(), Size: c.Size(), Rows: d.train.Len(), DataBytes: d.train.Bytes(),
		LoadSec: d.readTook.Seconds(), PeakRSS: peakRSS()}
	if sb, ok := d.trainSrc.(interface{ ShardBytes(v int) int64 }); ok {
		for _, v := range d.part.Shards() {
			b.FileBytes += sb.ShardBytes(v)
		}
	}
	if n := c.Size(); n > 1 && c.Rank() < n-1 {
		next := d.trainSrc.Sharding().Spread(shardNames(c.Members()[:n-1]))[c.Rank()]
		start := time.Now()
		tables, err := moveShards(ctx, d.trainSrc, &d.train, next)
		if err != nil {
			return err
		}
		for _, tab := range tables {
			b.TakeoverRows += tab.Len()
		}
		b.TakeoverSec = time.Since(start).Seconds()
	}
	t.result = &Result{Rank: c.Rank(), Size: c.Size(), Data: b}
	return elastic.ErrStop
}

// peakRSS returns the process's peak resident set size (VmHWM), or 0 where
// /proc does not tell.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
