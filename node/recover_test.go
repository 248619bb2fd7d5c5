package node

import (
	"fmt"
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

// TestForeignRing: a node learns that it was left out when a member gossips
// a ring it was never in; the first ring (0) and its own rings never count.
func TestForeignRing(t *testing.T) {
	mine := map[uint32]bool{0: true, 7: true, 9: true}
	for _, tc := range []struct {
		name  string
		rings []uint32 // each member's gossiped ring
		want  bool
	}{
		{"everyone in the first ring", []uint32{0, 0, 0}, false},
		{"everyone in rings this node was in", []uint32{7, 9, 0}, false},
		{"the others went on in ring 12", []uint32{7, 12, 12}, true},
		{"a joiner in no ring yet", []uint32{9, 9, 0}, false},
		{"no members", nil, false},
	} {
		var ms []Member
		for i, r := range tc.rings {
			ms = append(ms, Member{Name: fmt.Sprint("m", i), Meta: Meta{Ring: r}})
		}
		if m, got := foreignRing(ms, mine); got != tc.want || (got && mine[m.Ring]) {
			t.Errorf("%s: foreignRing = %v (%v), want %v", tc.name, got, m.Name, tc.want)
		}
	}
}
