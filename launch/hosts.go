package launch

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// Host is one line of a hosts file: a host and how many processes (slots)
// to start there.
type Host struct {
	Name  string // host name, IPv4 address, or IPv6 address (without brackets)
	Slots int
}

// IsLocal reports whether the host is this machine's loopback, where nodes
// start without ssh.
func (h Host) IsLocal() bool {
	if h.Name == "localhost" {
		return true
	}
	ip := net.ParseIP(h.Name)
	return ip != nil && ip.IsLoopback()
}

const maxSlots = 1024

// ParseHostfile reads a hosts file: one host per line as `host slots=N`
// (Open MPI and Horovod), `host:N`, or `host` (one slot); `#` starts a
// comment; blank lines are skipped; IPv6 addresses are bracketed
// (`[fe80::1]:2`, `[fe80::1] slots=2`). Errors name the file and line.
func ParseHostfile(path string) ([]Host, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hosts file: %w", err)
	}
	defer f.Close()
	return ParseHosts(f, path)
}

// ParseHosts parses hosts-file text from r; name labels errors.
func ParseHosts(r io.Reader, name string) ([]Host, error) {
	var hosts []Host
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		h, err := parseHostField(fields[0])
		if err == nil {
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				switch {
				case !ok:
					err = fmt.Errorf("%q: want key=value (e.g. slots=4)", kv)
				case k == "slots":
					if h.Slots, err = parseSlots(v); err == nil && strings.Contains(fields[0], ":") && !strings.HasSuffix(fields[0], "]") {
						err = fmt.Errorf("slots given twice (%s and %s)", fields[0], kv)
					}
				case k == "max_slots", k == "max-slots":
					_, err = parseSlots(v) // accepted for Open MPI compatibility; dmlrun starts exactly slots
				default:
					err = fmt.Errorf("unknown key %q (want slots=N)", k)
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if prev, ok := seen[h.Name]; ok {
			return nil, fmt.Errorf("%s:%d: host %s is already listed on line %d", name, line, h.Name, prev)
		}
		seen[h.Name] = line
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts listed", name)
	}
	return hosts, nil
}

// ParseHostList parses the inline form of -H: h1:2,h2:2,h3 (one slot where
// none is given).
func ParseHostList(s string) ([]Host, error) {
	var hosts []Host
	seen := map[string]bool{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("-H: entry %d is empty", i+1)
		}
		h, err := parseHostField(item)
		if err != nil {
			return nil, fmt.Errorf("-H: entry %d: %w", i+1, err)
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("-H: host %s is listed twice", h.Name)
		}
		seen[h.Name] = true
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// parseHostField parses host, host:N, [v6] or [v6]:N.
func parseHostField(f string) (Host, error) {
	h := Host{Slots: 1}
	rest := ""
	if strings.HasPrefix(f, "[") {
		end := strings.IndexByte(f, ']')
		if end < 0 {
			return h, fmt.Errorf("%q: missing ] after the IPv6 address", f)
		}
		h.Name, rest = f[1:end], f[end+1:]
		if net.ParseIP(h.Name) == nil || !strings.Contains(h.Name, ":") {
			return h, fmt.Errorf("%q: %q is not an IPv6 address", f, h.Name)
		}
		if rest != "" && !strings.HasPrefix(rest, ":") {
			return h, fmt.Errorf("%q: unexpected %q after ]", f, rest)
		}
		rest = strings.TrimPrefix(rest, ":")
		if rest == "" && strings.HasSuffix(f, ":") {
			return h, fmt.Errorf("%q: no slot count after the colon", f)
		}
	} else {
		if strings.Count(f, ":") > 1 {
			return h, fmt.Errorf("%q: put IPv6 addresses in brackets, e.g. [%s]", f, f)
		}
		var hasColon bool
		h.Name, rest, hasColon = strings.Cut(f, ":")
		if hasColon && rest == "" {
			return h, fmt.Errorf("%q: no slot count after the colon", f)
		}
		if err := checkHostName(h.Name); err != nil {
			return h, fmt.Errorf("%q: %w", f, err)
		}
	}
	if rest != "" {
		n, err := parseSlots(rest)
		if err != nil {
			return h, err
		}
		h.Slots = n
	}
	return h, nil
}

func parseSlots(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxSlots {
		return 0, fmt.Errorf("slot count %q: want a whole number from 1 to %d", s, maxSlots)
	}
	return n, nil
}

func checkHostName(s string) error {
	if s == "" {
		return fmt.Errorf("empty host name")
	}
	if len(s) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, r := range s {
		if !(r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("host name %q has the character %q", s, r)
		}
	}
	return nil
}
