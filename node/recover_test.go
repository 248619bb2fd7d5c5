package node

import (
	"strings"
	"testing"
)

func members(names string) []Member {
	var out []Member
	for _, n := range strings.Fields(names) {
		out = append(out, Member{Name: n})
	}
	return out
}

// TestQuorumCountsOnlyTheLastRing: only members of the last committed ring
// count, so that joiners cannot give both sides of a partition a majority.
func TestQuorumCountsOnlyTheLastRing(t *testing.T) {
	ring := members("a b c d e")
	for _, tc := range []struct {
		view string
		want int
		ok   bool // more than half of the ring
	}{
		{"a b c d e", 5, true},
		{"a b c", 3, true},
		{"d e", 2, false},
		{"d e x y", 2, false}, // two joiners on the minority side do not make it a majority
		{"a b c x", 3, true},
		{"x y z w v u", 0, false},
		{"", 0, false},
	} {
		q := quorum(members(tc.view), ring)
		if q != tc.want || (2*q > len(ring)) != tc.ok {
			t.Errorf("view %q of ring %q: quorum %d (majority %v), want %d (%v)", tc.view, "a b c d e", q, 2*q > len(ring), tc.want, tc.ok)
		}
	}
}
