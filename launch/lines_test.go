package launch

import (
	"strings"
	"testing"
)

// TestReadLines: lines of any length are read to the end; a line longer
// than the limit is cut and says how much was dropped; a last line without
// a newline still counts.
func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 3<<20)
	for _, tc := range []struct {
		name, in string
		max      int
		want     []string
		cuts     []int
	}{
		{"plain", "a\nbb\n", 10, []string{"a", "bb"}, []int{0, 0}},
		{"no final newline", "a\nbb", 10, []string{"a", "bb"}, []int{0, 0}},
		{"empty lines", "\n\na\n", 10, []string{"", "", "a"}, []int{0, 0, 0}},
		{"cut", "abcdefgh\nxy\n", 3, []string{"abc", "xy"}, []int{5, 0}},
		{"longer than the buffer", long + "\nend\n", 100, []string{long[:100], "end"}, []int{3<<20 - 100, 0}},
		{"long last line", "a\n" + long, 1 << 22, []string{"a", long}, []int{0, 0}},
	} {
		var got []string
		var cuts []int
		readLines(strings.NewReader(tc.in), tc.max, func(line []byte, cut int) {
			got, cuts = append(got, string(line)), append(cuts, cut)
		})
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d lines, want %d", tc.name, len(got), len(tc.want))
		}
		for i := range got {
			if got[i] != tc.want[i] || cuts[i] != tc.cuts[i] {
				t.Errorf("%s: line %d: %.20q cut %d, want %.20q cut %d", tc.name, i, got[i], cuts[i], tc.want[i], tc.cuts[i])
			}
		}
	}
}
