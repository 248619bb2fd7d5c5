package elastic

import (
	"fmt"
	"strings"
	"testing"
)

// members makes one member per name, each a process of its own (host = name).
func members(names string) []Member {
	var out []Member
	for _, n := range strings.Fields(names) {
		out = append(out, Member{Name: n, Meta: Meta{Host: n}})
	}
	return out
}

// TestQuorumCountsOnlyTheLastRing: only processes of the last committed ring
// count, so that joiners cannot give both sides of a partition a majority; a
// process back under a renewed name still counts, once.
func TestQuorumCountsOnlyTheLastRing(t *testing.T) {
	ring := members("a b c d e")
	renamed := func(host, name string) Member { return Member{Name: name, Meta: Meta{Host: host, Life: 1}} }
	for _, tc := range []struct {
		name string
		view []Member
		want int
	}{
		{"everyone", members("a b c d e"), 5},
		{"the majority side", members("a b c"), 3},
		{"the minority side", members("d e"), 2},
		{"the minority side and two joiners", members("d e x y"), 2}, // joiners do not make it a majority
		{"a majority and a joiner", members("a b c x"), 3},
		{"only joiners", members("x y z w v u"), 0},
		{"nobody", nil, 0},
		{"two back under new names", append(members("a"), renamed("d", "d2"), renamed("e", "e2")), 3},
		{"one process under two names", append(members("a b"), renamed("b", "b2")), 2},
	} {
		q := Quorum(tc.view, ring)
		if q != tc.want {
			t.Errorf("%s: quorum %d of ring a..e, want %d", tc.name, q, tc.want)
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
		if m, got := ForeignRing(ms, mine); got != tc.want || (got && mine[m.Ring]) {
			t.Errorf("%s: ForeignRing = %v (%v), want %v", tc.name, got, m.Name, tc.want)
		}
	}
}
