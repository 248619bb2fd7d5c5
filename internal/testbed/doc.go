// Package testbed builds a small cluster of "hosts" on one Linux machine for
// multi-host tests of dmlrun: each host is a network namespace with its own
// IP address, linked to a bridge that lives in a dedicated switch namespace,
// optionally with its outgoing link rate-limited (tc tbf) and an sshd of its
// own, so that the real `ssh` client can log in to it.
//
// Nothing is added to the root network namespace: the hosts can reach each
// other and nothing else, so no test traffic can leave the machine.
//
// # Usage
//
//	func TestThreeHosts(t *testing.T) {
//		bed := testbed.New(t, 3, testbed.Options{SSH: true, RateMbit: 1000})
//		// bed.Hosts[i].IP is host i's address. bed.SSH is the ssh client
//		// command (-F a generated config) that logs in as root anywhere.
//		hosts := bed.HostsFile([]int{2, 2, 2}) // "10.213.x.1 slots=2" ...
//		ssh := strings.Join(bed.SSH, " ")
//		// Run the launcher on host 0, as a user would on a login node.
//		cmd := bed.Command(ctx, 0, dmlrunBin, "-ssh", ssh, "-hosts", hosts, "train.yaml")
//		...
//		out, err := bed.SSHCommand(ctx, 0, 2, "pgrep dmlrun").Output() // on host 2
//		bed.Partition([]int{0}, []int{1, 2}) // host 0 cut off from 1 and 2
//		bed.Heal()
//		c, err := bed.Dial(ctx, 1, "tcp", bed.Hosts[2].IP+":22") // from host 1
//	}
//
// New skips the test (t.Skip) when it is not run as root or when ip, tc or
// (with SSH) sshd are missing; on Debian the packages are iproute2,
// openssh-server, openssh-client, iptables and (for throughput checks)
// iperf3. Everything New creates is removed by t.Cleanup, or earlier by
// [Bed.Close]. Code outside tests uses [Start] and [Bed.Close] instead.
//
// # Names and leftovers
//
// Every namespace, temporary directory and sshd of a bed carries the name
// of its run, Prefix + "<pid>-<seq>" (for example dmlrun-tb-4711-1-h0 and
// dmlrun-tb-4711-1-sw). A process that dies without cleaning up (a test
// binary killed by -timeout, kill -9) leaves them behind; the next [Start]
// calls [Sweep], which removes everything whose owning pid is gone, and
// leaves alone the beds of other live processes (packages tested in
// parallel). A bed's sshd processes also die with the process that started
// them (PR_SET_PDEATHSIG).
//
// # Limits on this kernel
//
// tc netem is not available, so a link can be slowed (tbf) but cannot be
// given delay or loss; Partition cuts links with iptables DROP rules instead.
package testbed
