package elastic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func startMember(t *testing.T, host string, slot int, digest string) *Membership {
	t.Helper()
	m, err := StartMembership(MemberConfig{
		Bind: "127.0.0.1:0", Cluster: "test", Secret: []byte("s"), Base: GossipLocalConfig(),
		Meta:   Meta{Data: fmt.Sprintf("127.0.0.1:%d", 1000+slot), Host: host, Slot: slot, Digest: digest},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Leave(time.Second) })
	return m
}

func TestMembershipConvergesInRingOrder(t *testing.T) {
	ms := []*Membership{startMember(t, "b", 1, "d"), startMember(t, "a", 2, "d"), startMember(t, "b", 0, "d"), startMember(t, "a", 0, "d")}
	addrs := make([]string, len(ms))
	for i, m := range ms {
		addrs[i] = m.Addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := m.Join(ctx, addrs); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		got, err := m.WaitFor(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, x := range got {
			order = append(order, fmt.Sprintf("%s%d", x.Host, x.Slot))
		}
		if s := strings.Join(order, " "); s != "a0 a2 b0 b1" {
			t.Fatalf("ring order %q, want sorted by (host, slot)", s)
		}
	}
}

func TestMembershipRefusesOtherConfig(t *testing.T) {
	a, b := startMember(t, "h", 0, "digest-one"), startMember(t, "h", 1, "digest-two")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.Join(ctx, []string{a.Addr()})
	for _, m := range []*Membership{a, b} {
		_, err := m.WaitFor(ctx, 2)
		if !errors.Is(err, ErrConfigMismatch) || !strings.Contains(err.Error(), "same train.yaml") {
			t.Fatalf("got %v, want a configuration mismatch on both sides", err)
		}
	}
}

func TestWaitForTimeoutListsMembers(t *testing.T) {
	a := startMember(t, "h", 0, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := a.WaitFor(ctx, 3)
	if err == nil || !strings.Contains(err.Error(), "only 1 joined") || !strings.Contains(err.Error(), "2 missing") || !strings.Contains(err.Error(), "host h slot 0") {
		t.Fatalf("got %v", err)
	}
}

// TestRenewComesBackUnderANewName: after Renew the others see the node
// under a fresh name on the same gossip address, and the old name is gone.
func TestRenewComesBackUnderANewName(t *testing.T) {
	a, b := startMember(t, "h", 0, "d"), startMember(t, "h", 1, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Join(ctx, []string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitFor(ctx, 2); err != nil {
		t.Fatal(err)
	}
	oldName, oldAddr := a.Name(), a.Addr()
	a2, err := a.Renew(ctx, []string{b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a2.Leave(time.Second) })
	if a2.Name() == oldName || a2.Addr() != oldAddr {
		t.Fatalf("renewed as %s at %s; was %s at %s: want a new name at the same address", a2.Name(), a2.Addr(), oldName, oldAddr)
	}
	for {
		names := map[string]bool{}
		for _, x := range b.Members() {
			names[x.Name] = true
		}
		if names[a2.Name()] && !names[oldName] && len(names) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("b sees %v; want %s and itself, not %s", names, a2.Name(), oldName)
		}
		b.WaitChange(ctx, 100*time.Millisecond)
	}
	if _, err := a2.WaitFor(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

// TestMembersKeepsTheNewestNameOfAProcess: while gossip still holds a
// process's old name beside its renewed one, the view counts it once, under
// the renewed name.
func TestMembersKeepsTheNewestNameOfAProcess(t *testing.T) {
	p := Meta{Host: "h", Slot: 1, Start: 42}
	renewed := p
	renewed.Life = 1
	m := &Membership{members: map[string]Member{
		"old": {Name: "old", Meta: p},
		"new": {Name: "new", Meta: renewed},
		"x":   {Name: "x", Meta: Meta{Host: "h", Slot: 0, Start: 7}},
	}}
	var names []string
	for _, x := range m.Members() {
		names = append(names, x.Name)
	}
	if got := strings.Join(names, " "); got != "x new" {
		t.Fatalf("members %q, want \"x new\"", got)
	}
}
