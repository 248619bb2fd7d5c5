package timeline

import (
	"reflect"
	"testing"
)

func TestClockOffsets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readings [][]int64
		anchor   int
		want     []int64
		err      bool
	}{
		{"one rank", [][]int64{{5, 9, 12}}, 0, []int64{0}, false},
		{"same clock", [][]int64{{100, 200, 300}, {100, 200, 300}}, 0, []int64{0, 0}, false},
		{"constant offsets", [][]int64{{1000, 2000, 3000}, {1500, 2500, 3500}, {-1000, 0, 1000}}, 0, []int64{0, 500, -2000}, false},
		{"to another anchor", [][]int64{{1000, 2000, 3000}, {1500, 2500, 3500}}, 1, []int64{-500, 0}, false},
		// Rank 1 was late out of one barrier by 90: the median ignores it.
		{"an outlier round", [][]int64{{0, 100, 200, 300, 400}, {7, 107, 297, 307, 407}}, 0, []int64{0, 7}, false},
		{"even rounds: the middle two's mean", [][]int64{{0, 0, 0, 0}, {1, 2, 10, 20}}, 0, []int64{0, 6}, false},
		{"huge readings (Unix nanoseconds)", [][]int64{{1765432101000000000, 1765432101000100000}, {1765432101000000042, 1765432101000100042}}, 0, []int64{0, 42}, false},
		{"ragged", [][]int64{{1, 2}, {1}}, 0, nil, true},
		{"no rounds", [][]int64{{}, {}}, 0, nil, true},
		{"bad anchor", [][]int64{{1}}, 1, nil, true},
	} {
		got, err := ClockOffsets(tc.readings, tc.anchor)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.err)
		}
	}
}
