package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// daemon is an sshd started by a bed, in the foreground (-D) so that the
// bed can kill and reap it.
type daemon struct {
	host int
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when cmd has been waited for
}

// startSSH generates the keys and configs, starts one sshd per host and
// waits until each answers with an SSH banner, connecting from another
// host's namespace.
func (b *Bed) startSSH() error {
	// sshd wants its privilege separation directory even in -D mode.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	clientKey := filepath.Join(b.Dir, "id_ed25519")
	if err := keygen(clientKey); err != nil {
		return err
	}
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		return err
	}
	authKeys := filepath.Join(b.Dir, "authorized_keys")
	if err := os.WriteFile(authKeys, pub, 0o600); err != nil {
		return err
	}
	for i, h := range b.Hosts {
		hdir := filepath.Join(b.Dir, fmt.Sprintf("h%d", i))
		if err := os.Mkdir(hdir, 0o700); err != nil {
			return err
		}
		hostKey := filepath.Join(hdir, "ssh_host_ed25519_key")
		if err := keygen(hostKey); err != nil {
			return err
		}
		cfg := filepath.Join(hdir, "sshd_config")
		if err := os.WriteFile(cfg, []byte(sshdConfig(h.IP, hostKey, authKeys, hdir)), 0o600); err != nil {
			return err
		}
		if err := b.startSSHD(i, cfg, filepath.Join(hdir, "sshd.log")); err != nil {
			return err
		}
	}

	cfgPath := filepath.Join(b.Dir, "ssh_config")
	if err := os.WriteFile(cfgPath, []byte(b.sshConfig(clientKey)), 0o600); err != nil {
		return err
	}
	b.SSH = []string{"ssh", "-F", cfgPath}

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, d := range b.daemons {
		if err := b.waitSSHD(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func keygen(path string) error {
	return run(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dmlrun-testbed", "-f", path)
}

// sshdConfig allows root to log in with the bed's key only. StrictModes is
// off because the key files live in a temporary directory; no AcceptEnv, so
// a test sees exactly the environment that dmlrun passes on the command line.
func sshdConfig(ip, hostKey, authKeys, dir string) string {
	return strings.Join([]string{
		"ListenAddress " + ip,
		"Port 22",
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		// A launcher opens one connection per process at once; the default
		// (10:30:100) drops unauthenticated connections beyond 10.
		"MaxStartups 256",
		"MaxSessions 64",
		"",
	}, "\n")
}

func (b *Bed) sshConfig(clientKey string) string {
	var sb strings.Builder
	for i, h := range b.Hosts {
		fmt.Fprintf(&sb, "Host h%d\n  HostName %s\n", i, h.IP)
	}
	fmt.Fprintf(&sb, `Host *
  User root
  IdentityFile %s
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
`, clientKey)
	return sb.String()
}

func (b *Bed) startSSHD(host int, cfg, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(toolPath("ip"), "netns", "exec", b.Hosts[host].NS, toolPath("sshd"), "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = pdeathsig()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd on host %d: %w", host, err)
	}
	d := &daemon{host: host, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	b.daemons = append(b.daemons, d)
	return nil
}

// waitSSHD polls until d's sshd sends its banner to a connection from the
// next host, and fails early if the sshd exits.
func (b *Bed) waitSSHD(ctx context.Context, d *daemon) error {
	from := (d.host + 1) % len(b.Hosts)
	addr := b.Hosts[d.host].IP + ":22"
	var last error
	for {
		select {
		case <-d.done:
			out, _ := os.ReadFile(d.log)
			return fmt.Errorf("sshd on host %d exited: %v: %s", d.host, d.cmd.ProcessState, strings.TrimSpace(string(out)))
		case <-ctx.Done():
			return fmt.Errorf("sshd on host %d (%s) not answering after %v: %w", d.host, addr, readyTimeout, errors.Join(ctx.Err(), last))
		default:
		}
		if last = b.sshBanner(ctx, from, addr); last == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func (b *Bed) sshBanner(ctx context.Context, from int, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := b.Dial(ctx, from, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("%s: not an SSH banner: %q", addr, line)
	}
	return nil
}
