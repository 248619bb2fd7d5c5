package elastic

import (
	"errors"
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

// mem makes the members of the names (host h, slot = position in names),
// each with the given ring and term.
func mem(names string, ring, term uint32) []Member {
	var out []Member
	for i, n := range strings.Fields(names) {
		out = append(out, Member{Name: n, Meta: Meta{Host: "h", Slot: i, Start: int64(i + 1), Ring: ring, Term: term}})
	}
	return out
}

// kinds names the actions, e.g. "Connect Publish".
func kinds(acts []Action) string {
	var s []string
	for _, a := range acts {
		s = append(s, strings.TrimPrefix(fmt.Sprintf("%T", a), "elastic."))
	}
	return strings.Join(s, " ")
}

// trained brings a core of members names (self: the first) into its
// first ring, trained up to step.
func trained(t *testing.T, names string, step int) (*Core, []Member) {
	t.Helper()
	ms := mem(names, 0, 0)
	c := NewCore(CoreConfig{Self: ms[0], Nodes: len(ms), MinNodes: 1, RejoinTicks: 100, RenewTicks: 5})
	c.Start(step)
	c.View(ms, ms)
	c.Connected(EpochOf(ms), nil)
	steps := make([]int, len(ms))
	for i := range steps {
		steps[i] = step
	}
	d := ViewDigest(ms)
	digests := []uint64{d, d, d, d, d, d, d, d, d}[:len(ms)]
	c.Agreed(EpochOf(ms), digests, steps, nil)
	if got := kinds(c.Ready()); got != "Connect Publish Agree Train" {
		t.Fatalf("forming the first ring: %s", got)
	}
	return c, ms
}

func TestCoreFirstRing(t *testing.T) {
	ms := mem("a b c d", 0, 0)
	c := NewCore(CoreConfig{Self: ms[1], Nodes: 3})
	c.Start(0)
	c.View(ms[:2], ms[:2])
	if a := c.Ready(); len(a) != 0 {
		t.Fatalf("2 of 3 members: %v", a)
	}
	c.View(ms, ms)
	a := c.Ready()
	if len(a) != 1 || a[0].(Connect).Epoch != EpochOf(ms[:3]) || a[0].(Connect).Rank != 1 || len(a[0].(Connect).Members) != 3 {
		t.Fatalf("3 of 3: %+v", a)
	}
	late := NewCore(CoreConfig{Self: ms[3], Nodes: 3})
	late.Start(0)
	late.View(ms, ms)
	if a := late.Ready(); kinds(a) != "Fail" || late.Phase() != PhaseFailed {
		t.Fatalf("a fourth node for a ring of 3: %s", kinds(a))
	}
	join := NewCore(CoreConfig{Self: ms[3], Nodes: 3})
	join.Start(-1)
	view := append(mem("a b c", 7, 2), ms[3])
	view[0].State = StateTraining
	join.View(view, view)
	if a := join.Ready(); kinds(a) != "Connect" || a[0].(Connect).Epoch != EpochOf(view) {
		t.Fatalf("a joiner of a training ring: %+v", a)
	}
}

func TestCoreAgreement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		digests []uint64
		steps   []int
		want    string
		check   func(a []Action) bool
	}{
		{"same view and step", []uint64{1, 1, 1}, []int{4, 4, 4}, "Train", nil},
		{"different views", []uint64{1, 2, 1}, []int{4, 4, 4}, "Leave Connect", nil},
		{"one behind", []uint64{1, 1, 1}, []int{3, 5, 5}, "Sync", func(a []Action) bool {
			s := a[0].(Sync)
			return s.Root == 1 && s.Step == 5 && len(s.Behind) == 1 && s.Behind[0] == 0
		}},
		{"a joiner and two ahead", []uint64{1, 1, 1}, []int{-1, 7, 7}, "Sync", func(a []Action) bool { return a[0].(Sync).Root == 1 }},
		{"nobody has state", []uint64{1, 1, 1}, []int{-1, -1, -1}, "Leave Fail", func(a []Action) bool { return errors.Is(a[1].(Fail).Err, ErrNoState) }},
	} {
		ms := mem("a b c", 0, 0)
		c := NewCore(CoreConfig{Self: ms[0], Nodes: 3, RejoinTicks: 10})
		c.Start(0)
		c.View(ms, ms)
		c.Connected(EpochOf(ms), nil)
		c.Ready()
		c.Agreed(EpochOf(ms), tc.digests, tc.steps, nil)
		a := c.Ready()
		if kinds(a) != tc.want || (tc.check != nil && !tc.check(a)) {
			t.Errorf("%s: %s %+v, want %s", tc.name, kinds(a), a, tc.want)
		}
	}
}

// TestCoreRecovery: after a failure a node re-forms a ring with a majority
// of its last ring, waits (knocking) without one and gives up after
// RejoinTicks, renews its name when others went on in a foreign ring, and
// joins like a new node when a live member is of a higher term.
func TestCoreRecovery(t *testing.T) {
	c, ms := trained(t, "a b c d e", 10)
	c.View(ms[:3], ms[:3]) // the driver's fresh view: 3 of 5
	c.RingFailed(errors.New("peer lost"))
	if a := c.Ready(); kinds(a) != "Leave Connect" || a[1].(Connect).Epoch != EpochOf(ms[:3]) {
		t.Fatalf("a majority: %s", kinds(a))
	}
	c.View(ms[:2], ms[:2]) // 2 of 5 now
	c.Connected(EpochOf(ms[:3]), errors.New("refused"))
	if a := c.Ready(); kinds(a) != "Rejoin" {
		t.Fatalf("a minority: %s", kinds(a))
	}
	for range 99 {
		c.Tick()
	}
	if a := c.Ready(); strings.Contains(kinds(a), "Fail") {
		t.Fatalf("gave up before RejoinTicks: %s", kinds(a))
	}
	c.Tick()
	if a := c.Ready(); !strings.HasSuffix(kinds(a), "Fail") || !errors.Is(c.Err(), ErrQuorumLost) {
		t.Fatalf("after RejoinTicks: %s %v", kinds(a), c.Err())
	}

	c, ms = trained(t, "a b c d e", 10)
	c.View(ms[:1], ms[:1])
	c.RingFailed(errors.New("peer lost"))
	c.Ready()
	others := mem("a b c d e", 99, 2)[1:] // they went on in ring 99, term 2
	all := append([]Member{ms[0]}, others...)
	c.View(all, ms[:1]) // gossip shows them; none answers yet
	for range 5 {
		c.Tick()
	}
	if a := c.Ready(); !strings.Contains(kinds(a), "Renew") {
		t.Fatalf("evicted, after RenewTicks: %s", kinds(a))
	}
	renewed := ms[0]
	renewed.Name, renewed.Life = "a2", 1
	c.Renewed(renewed)
	for range 30 {
		c.Tick()
	}
	if a := c.Ready(); strings.Contains(kinds(a), "Renew") {
		t.Fatalf("renewed again within 8 RenewTicks: %s", kinds(a))
	}
	live := append([]Member{renewed}, others[:1]...) // 1 of 5 answers, of a higher term
	c.View(append([]Member{renewed}, others...), live)
	if a := c.Ready(); kinds(a) != "Connect" {
		t.Fatalf("behind a higher term: %s, want to join like a new node", kinds(a))
	}
}

// TestCoreReform: a training node that sees a member outside its ring
// leaves the ring at the next step boundary, not before.
func TestCoreReform(t *testing.T) {
	c, ms := trained(t, "a b c", 4)
	more := append(ms, mem("a b c d", 0, 0)[3])
	c.View(more, more)
	if a := c.Ready(); len(a) != 0 {
		t.Fatalf("mid-step: %s", kinds(a))
	}
	c.Stepped(5)
	if a := c.Ready(); kinds(a) != "Leave Connect" || len(a[1].(Connect).Members) != 4 || c.Step() != 5 {
		t.Fatalf("at the step boundary: %s, step %d", kinds(a), c.Step())
	}
}
