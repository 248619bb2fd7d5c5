package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Prefix starts the name of every namespace and temporary directory that a
// bed creates; [Sweep] looks for it. Names that continue with something
// other than a pid (the manual script's dmlrun-tb-sh-) are never swept.
const Prefix = "dmlrun-tb-"

// MaxHosts is the largest bed: the hosts share one /24.
const MaxHosts = 250

// Time limits. Every wait of the package is bounded by one of them.
const (
	cmdTimeout   = 10 * time.Second // one ip, tc, iptables or ssh-keygen run
	readyTimeout = 15 * time.Second // all sshds of a bed answering
	closeTimeout = 10 * time.Second // killing a bed's processes
)

var (
	// ErrNotRoot is returned by Start when the process is not root: network
	// namespaces need CAP_SYS_ADMIN. New skips the test instead.
	ErrNotRoot = errors.New("testbed: needs root to create network namespaces")
	// ErrMissingTool is returned by Start when a program it needs is not
	// installed. New skips the test instead.
	ErrMissingTool = errors.New("testbed: required program not installed")
)

// Options shape a bed.
type Options struct {
	// RateMbit limits every host's outgoing link to this many Mbit/s with
	// tc tbf (burst 512kb, latency 50ms); 0 leaves the links unshaped
	// (veth speed, several GB/s).
	RateMbit int
	// SSH starts an sshd on port 22 of every host that lets the bed's
	// client key log in as root; Bed.SSH is the client command.
	SSH bool
}

// Host is one simulated machine.
type Host struct {
	NS    string // network namespace name, e.g. dmlrun-tb-4711-1-h0
	IP    string // its IPv4 address, e.g. 10.213.17.1
	Iface string // its link to the switch, inside NS ("eth0")
}

// Bed is a running set of hosts. Its exported fields are read-only.
type Bed struct {
	Hosts []Host
	// Dir holds the bed's generated files (keys, configs, logs, hosts
	// files); Close removes it.
	Dir string
	// SSH is the ssh client command to use, e.g.
	// ["ssh", "-F", Dir+"/ssh_config"]; nil without Options.SSH.
	SSH []string
	// Run names this bed: every namespace name starts with it.
	Run string
	// Subnet is the hosts' network, e.g. 10.213.17.0/24, picked from the
	// pid. Beds never see each other, so two with one subnet do not clash.
	Subnet string

	opts     Options
	tb       testing.TB // set by New: failures of Partition etc. go there
	switchNS string
	created  []string // namespaces in creation order
	daemons  []*daemon

	mu     sync.Mutex
	cuts   map[[2]int]bool // (receiver, sender) pairs dropped by Partition
	hooked map[int]bool    // hosts whose INPUT jumps to the partition chain

	closeOnce sync.Once
	closeErr  error
}

var (
	runSeq atomic.Int64
	live   = struct {
		sync.Mutex
		beds map[*Bed]bool
	}{beds: map[*Bed]bool{}}
)

// New starts a bed of k hosts for a test and removes it when the test ends.
// It skips the test when not run as root or when a required program is
// missing, and fails it on any other error.
func New(t testing.TB, k int, opts Options) *Bed {
	t.Helper()
	b, err := Start(k, opts)
	if errors.Is(err, ErrNotRoot) || errors.Is(err, ErrMissingTool) {
		t.Skipf("skipping multi-host test: %v", err)
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	b.tb = t
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("testbed cleanup: %v", err)
		}
	})
	return b
}

// Start creates a bed of k hosts. The caller must call Close. It first
// removes the leftovers of dead processes (Sweep).
func Start(k int, opts Options) (_ *Bed, err error) {
	if k < 1 || k > MaxHosts {
		return nil, fmt.Errorf("testbed: %d hosts: want 1 to %d", k, MaxHosts)
	}
	if opts.RateMbit < 0 {
		return nil, fmt.Errorf("testbed: RateMbit %d: want 0 (unshaped) or more", opts.RateMbit)
	}
	if err := findTools(opts); err != nil {
		return nil, err
	}
	if err := Sweep(); err != nil {
		return nil, fmt.Errorf("removing stale beds: %w", err)
	}

	pid, seq := os.Getpid(), runSeq.Add(1)
	x := (pid+int(seq))%250 + 1
	b := &Bed{
		Run:    fmt.Sprintf("%s%d-%d", Prefix, pid, seq),
		Subnet: fmt.Sprintf("10.213.%d.0/24", x),
		opts:   opts,
		cuts:   map[[2]int]bool{},
		hooked: map[int]bool{},
	}
	b.switchNS = b.Run + "-sw"
	for i := range k {
		b.Hosts = append(b.Hosts, Host{
			NS:    fmt.Sprintf("%s-h%d", b.Run, i),
			IP:    fmt.Sprintf("10.213.%d.%d", x, i+1),
			Iface: "eth0",
		})
	}
	live.Lock()
	live.beds[b] = true
	live.Unlock()
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()

	if b.Dir, err = os.MkdirTemp("", b.Run+"-"); err != nil {
		return nil, err
	}
	if err := b.buildNetwork(); err != nil {
		return nil, err
	}
	if opts.SSH {
		if err := b.startSSH(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Close kills every process in the bed's namespaces, deletes the
// namespaces and removes Dir. It is idempotent, safe for concurrent use and
// does not touch a testing.TB, so a signal handler may call it (or
// CloseAll). Later calls return the first call's result.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.teardown()
		live.Lock()
		delete(live.beds, b)
		live.Unlock()
	})
	return b.closeErr
}

// CloseAll closes every bed of this process that is still open, for a
// signal handler in a TestMain or a tool.
func CloseAll() error {
	live.Lock()
	var beds []*Bed
	for b := range live.beds {
		beds = append(beds, b)
	}
	live.Unlock()
	var errs []error
	for _, b := range beds {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

func (b *Bed) teardown() error {
	deadline := time.Now().Add(closeTimeout)
	var errs []error
	for _, d := range b.daemons {
		_ = d.cmd.Process.Kill()
	}
	for _, d := range b.daemons {
		select {
		case <-d.done:
		case <-time.After(time.Until(deadline)):
			errs = append(errs, fmt.Errorf("sshd of host %d (pid %d) did not exit", d.host, d.cmd.Process.Pid))
		}
	}
	for i := len(b.created) - 1; i >= 0; i-- {
		if err := removeNS(b.created[i], deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if b.Dir != "" {
		if err := os.RemoveAll(b.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Command returns a command that runs name inside host's namespace
// (ip netns exec). Cancelling ctx kills it.
func (b *Bed) Command(ctx context.Context, host int, name string, args ...string) *exec.Cmd {
	ns := b.host(host).NS
	return exec.CommandContext(ctx, toolPath("ip"), append([]string{"netns", "exec", ns, name}, args...)...)
}

// SSHCommand returns a command that runs on host from and logs in with ssh
// to host to, where it runs remote (a shell command line, as with ssh).
func (b *Bed) SSHCommand(ctx context.Context, from, to int, remote ...string) *exec.Cmd {
	if b.SSH == nil {
		panic("testbed: SSHCommand on a bed started without Options.SSH")
	}
	args := append(append(b.SSH[1:len(b.SSH):len(b.SSH)], "root@"+b.host(to).IP), remote...)
	return b.Command(ctx, from, b.SSH[0], args...)
}

// HostsFile writes a dmlrun hosts file into Dir, one line "IP slots=N" per
// host with N = slots[i], and returns its path. A nil slots gives every
// host one slot; a zero leaves the host out. Each call writes a new file.
func (b *Bed) HostsFile(slots []int) string {
	if slots != nil && len(slots) != len(b.Hosts) {
		b.fail("HostsFile: %d slot counts for %d hosts", len(slots), len(b.Hosts))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# test bed %s\n", b.Run)
	for i, h := range b.Hosts {
		n := 1
		if slots != nil {
			n = slots[i]
		}
		if n < 0 {
			b.fail("HostsFile: host %d: %d slots", i, n)
		}
		if n > 0 {
			fmt.Fprintf(&sb, "%s slots=%d\n", h.IP, n)
		}
	}
	f, err := os.CreateTemp(b.Dir, "hosts-*.txt")
	if err == nil {
		_, err = f.WriteString(sb.String())
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		b.fail("HostsFile: %v", err)
	}
	return f.Name()
}

func (b *Bed) host(i int) Host {
	if i < 0 || i >= len(b.Hosts) {
		panic(fmt.Sprintf("testbed: host %d: the bed has hosts 0 to %d", i, len(b.Hosts)-1))
	}
	return b.Hosts[i]
}

// fail reports an error of a method without an error result: through the
// test of New, or as a panic for a bed made by Start.
func (b *Bed) fail(format string, args ...any) {
	if b.tb != nil {
		b.tb.Helper()
		b.tb.Fatalf("testbed: "+format, args...)
	}
	panic(fmt.Sprintf("testbed: "+format, args...))
}

// findTools checks that the process is root and that the programs that
// opts need are installed.
func findTools(opts Options) error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	need := []string{"ip"}
	if opts.RateMbit > 0 {
		need = append(need, "tc")
	}
	if opts.SSH {
		need = append(need, "sshd", "ssh", "ssh-keygen")
	}
	var missing []string
	for _, name := range need {
		if _, err := lookTool(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (Debian: apt-get install iproute2 openssh-server openssh-client)",
			ErrMissingTool, strings.Join(missing, ", "))
	}
	return nil
}

// lookTool finds program name in PATH or, failing that, in the sbin
// directories, which a non-login root shell may leave out of PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrMissingTool, name)
}

// toolPath is lookTool's path, or name itself (to fail when run).
func toolPath(name string) string {
	if p, err := lookTool(name); err == nil {
		return p
	}
	return name
}
