package launch

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Remote describes how to start processes on the hosts of a hosts file.
type Remote struct {
	// SSH is the ssh client command, e.g. ["ssh", "-p", "2222", "-i", "key"];
	// it runs non-interactively (BatchMode), so that a host that wants a
	// password fails at once instead of prompting.
	SSH []string
	// Bin is the dmlrun binary on the remote hosts (default: the local
	// binary's path).
	Bin string
	// Self is the local binary, for local entries.
	Self string
}

// Command returns the argv that runs bin with args on host h: directly for a
// local entry (localhost, 127.x, ::1), through ssh otherwise. The remote
// command is quoted for the remote shell.
func (r Remote) Command(h Host, args []string) []string {
	if h.IsLocal() {
		return append([]string{r.Self}, args...)
	}
	bin := r.Bin
	if bin == "" {
		bin = r.Self
	}
	words := make([]string, 0, len(args)+2)
	words = append(words, "exec", shellQuote(bin))
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	ssh := r.SSH
	if len(ssh) == 0 {
		ssh = []string{"ssh"}
	}
	argv := slices.Clone(ssh)
	argv = append(argv, "-o", "BatchMode=yes", "-T", h.Name, strings.Join(words, " "))
	return argv
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Slot is one process of a job: where it runs and its rank.
type Slot struct {
	Host Host
	Slot int // index among the processes of its host
	Rank int // position in the ring: sorted by (host, slot), as the nodes sort themselves
}

// Label prefixes the process's log lines: rank@host.
func (s Slot) Label() string { return fmt.Sprintf("%d@%s", s.Rank, s.Host.Name) }

// BindAddr is the gossip address a node of this slot binds: the host's own
// address when the hosts file gives an IP (so that the data plane uses the
// same interface), all interfaces otherwise, on port base+slot (base 0: let
// the OS choose).
func (s Slot) BindAddr(base int) string {
	port := 0
	if base > 0 {
		port = base + s.Slot
	}
	host := "0.0.0.0"
	switch {
	case s.Host.Name == "localhost":
		host = "127.0.0.1"
	case net.ParseIP(s.Host.Name) != nil:
		host = s.Host.Name
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Slots expands hosts into one Slot per process, in ring order.
func Slots(hosts []Host) []Slot {
	var out []Slot
	for _, h := range hosts {
		for i := range h.Slots {
			out = append(out, Slot{Host: h, Slot: i})
		}
	}
	slices.SortStableFunc(out, func(a, b Slot) int {
		if c := strings.Compare(a.Host.Name, b.Host.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.Slot, b.Slot)
	})
	for i := range out {
		out[i].Rank = i
	}
	return out
}
