package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// buildNetwork creates the switch namespace with bridge br0 and one host
// namespace per host, linked to the bridge by a veth pair (eth0 in the host,
// h<i> in the switch). Nothing is created in the root namespace: each veth
// is made in the switch namespace with its peer sent straight into the host.
func (b *Bed) buildNetwork() error {
	if err := b.addNS(b.switchNS); err != nil {
		return err
	}
	sw := []string{"link add br0 type bridge", "link set br0 up"}
	for i, h := range b.Hosts {
		if err := b.addNS(h.NS); err != nil {
			return err
		}
		sw = append(sw,
			fmt.Sprintf("link add h%d type veth peer name %s netns %s", i, h.Iface, h.NS),
			fmt.Sprintf("link set h%d master br0 up", i))
	}
	if err := ipBatch(b.switchNS, sw); err != nil {
		return err
	}
	for _, h := range b.Hosts {
		err := ipBatch(h.NS, []string{
			"link set lo up",
			fmt.Sprintf("addr add %s/24 dev %s", h.IP, h.Iface),
			fmt.Sprintf("link set %s up", h.Iface),
		})
		if err != nil {
			return err
		}
		if b.opts.RateMbit > 0 {
			err := run(nil, "tc", "-n", h.NS, "qdisc", "add", "dev", h.Iface, "root",
				"tbf", "rate", fmt.Sprintf("%dmbit", b.opts.RateMbit), "burst", "512kb", "latency", "50ms")
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Bed) addNS(name string) error {
	if err := run(nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	b.created = append(b.created, name)
	return nil
}

// ipBatch runs ip commands (without the leading "ip") in namespace ns with
// one ip process.
func ipBatch(ns string, cmds []string) error {
	return run(strings.NewReader(strings.Join(cmds, "\n")+"\n"), "ip", "-n", ns, "-batch", "-")
}

// run runs a short command (bounded by cmdTimeout) and returns an error
// that names it and carries its output.
func run(stdin *strings.Reader, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(name), args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeNS kills every process in namespace name, waits (until deadline)
// for them to be gone, then deletes the namespace. A namespace that does
// not exist is not an error.
func removeNS(name string, deadline time.Time) error {
	for {
		pids, err := nsPids(name)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: processes %v still running", name, pids)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	err := run(nil, "ip", "netns", "delete", name)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(netnsDir, name)); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
	}
	return err
}

// nsPids lists the processes whose network namespace is the named one (as
// `ip netns pids` does), never this process itself.
func nsPids(name string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &want); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Dial connects from inside host's namespace, as a process on that host
// would. addr must be an IP address and port (there is no DNS on the bed).
func (b *Bed) Dial(ctx context.Context, host int, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := b.inNS(host, func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside host's namespace, e.g.
// b.Listen(1, "tcp", b.Hosts[1].IP+":0").
func (b *Bed) Listen(host int, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := b.inNS(host, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// inNS runs fn on an OS thread that has joined host's network namespace, so
// that the sockets fn creates belong to that host. A socket keeps its
// namespace after the thread leaves it. The thread returns to this
// process's namespace afterwards; if it cannot, it stays locked and dies
// with its goroutine instead of running other goroutines in the wrong
// namespace.
func (b *Bed) inNS(host int, fn func() error) error {
	ns := b.host(host).NS
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("leaving namespace %s: %w", ns, rerr))
			return // the thread stays locked and exits with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// pdeathsig makes a child die with the process that started it, so a test
// binary killed by -timeout or kill -9 does not leave it running.
func pdeathsig() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
