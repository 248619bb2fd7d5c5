package testbed

import (
	"fmt"
	"slices"
	"strings"
)

// partChain is the iptables chain, in each host's filter table, that holds
// the DROP rules of Partition; INPUT jumps to it.
const partChain = "DMLRUN-PART"

// Partition cuts every link between a host of groupA and a host of groupB,
// in both directions, as a pulled cable would: each host drops the packets
// that arrive from the other group (iptables DROP on INPUT), so a connect
// across the cut times out and an established connection stops moving
// data, while the sender sees no error. Links within a group, and to hosts
// in neither group, keep working. Partitions add up until Heal.
//
// The rules are in place when Partition returns. It needs iptables; errors
// fail the test (or panic, for a bed made by Start).
func (b *Bed) Partition(groupA, groupB []int) {
	if b.tb != nil {
		b.tb.Helper()
	}
	for _, h := range slices.Concat(groupA, groupB) {
		b.host(h) // panics on a bad index
	}
	for _, a := range groupA {
		if slices.Contains(groupB, a) {
			b.fail("Partition: host %d is in both groups", a)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	touched := map[int]bool{}
	for _, a := range groupA {
		for _, c := range groupB {
			b.cuts[[2]int{a, c}] = true
			b.cuts[[2]int{c, a}] = true
			touched[a], touched[c] = true, true
		}
	}
	for h := range touched {
		if err := b.writeChain(h); err != nil {
			b.fail("Partition: %v", err)
		}
	}
}

// Heal removes every cut made by Partition.
func (b *Bed) Heal() {
	if b.tb != nil {
		b.tb.Helper()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.cuts)
	for h := range b.hooked {
		if err := b.writeChain(h); err != nil {
			b.fail("Heal: %v", err)
		}
	}
}

// writeChain replaces host h's partition chain with the rules for its
// current cuts, in one iptables-restore (atomic for the host).
func (b *Bed) writeChain(h int) error {
	var sb strings.Builder
	// With --noflush, declaring the chain creates or empties it and leaves
	// the rest of the table alone.
	fmt.Fprintf(&sb, "*filter\n:%s - [0:0]\n", partChain)
	if !b.hooked[h] {
		fmt.Fprintf(&sb, "-A INPUT -j %s\n", partChain)
	}
	for i, peer := range b.Hosts {
		if b.cuts[[2]int{h, i}] {
			fmt.Fprintf(&sb, "-A %s -s %s/32 -j DROP\n", partChain, peer.IP)
		}
	}
	sb.WriteString("COMMIT\n")
	restore, err := lookTool("iptables-restore")
	if err != nil {
		return fmt.Errorf("%w (Debian: apt-get install iptables)", err)
	}
	err = run(strings.NewReader(sb.String()), "ip", "netns", "exec", b.Hosts[h].NS, restore, "-w", "5", "--noflush")
	if err != nil {
		return fmt.Errorf("host %d: %w", h, err)
	}
	b.hooked[h] = true
	return nil
}
