#!/usr/bin/env bash
# netns-testbed.sh: K simulated hosts on this machine, for trying dmlrun by
# hand and for benchmarks; the same layout as internal/testbed (Go tests).
#
#   sudo scripts/netns-testbed.sh up K [-rate MBIT] [-no-ssh]
#   sudo scripts/netns-testbed.sh status
#   sudo scripts/netns-testbed.sh exec I CMD [ARGS...]   # run CMD on host I
#   sudo scripts/netns-testbed.sh down
#
# Each host is a network namespace dmlrun-tb-sh-h<I> with address
# 10.213.0.<I+1>/24 on eth0, a veth to bridge br0 in namespace dmlrun-tb-sh-sw.
# Nothing is added to the root namespace, so the hosts reach each other and
# nothing else. -rate shapes every host's outgoing link with tc tbf (netem is
# not available on this kernel: no delay or loss). Unless -no-ssh, each host
# runs an sshd on port 22 that lets the generated key log in as root; `up`
# prints the ssh command and writes a dmlrun hosts file.
#
# Files live in /tmp/dmlrun-tb-sh. One bed at a time: `down` removes every
# namespace named dmlrun-tb-sh-*, the processes inside them and the files.
# (The Go package's sweep leaves dmlrun-tb-sh-* alone.)
# Needs root and: iproute2, openssh-server, openssh-client (iperf3 to measure).
set -euo pipefail

NAME=dmlrun-tb-sh
DIR=/tmp/$NAME
SW=$NAME-sw
NET=10.213.0

die() { echo "netns-testbed: $*" >&2; exit 1; }
ns_of() { echo "$NAME-h$1"; }
ip_of() { echo "$NET.$(($1 + 1))"; }
bed_namespaces() { ip netns list | awk -v p="$NAME-" 'index($1, p) == 1 {print $1}'; }

# wait_port NS ADDR PORT: poll (at most 10 s) until a TCP connect from NS works.
wait_port() {
  local deadline=$((SECONDS + 10))
  until ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05 # poll interval
  done
}

up() {
  local k=${1:-}
  shift || true
  if ! [[ $k =~ ^[0-9]+$ ]] || ((k < 1 || k > 250)); then die "up K: K from 1 to 250"; fi
  local rate=0 ssh=1
  while (($#)); do
    case $1 in
      -rate) rate=${2:?-rate MBIT}; shift 2 ;;
      -no-ssh) ssh=0; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ $rate =~ ^[0-9]+$ ]] || die "-rate: want Mbit/s, got $rate"
  ((EUID == 0)) || die "needs root"
  [[ -z $(bed_namespaces) && ! -e $DIR ]] || die "a bed is up: run '$0 down' first"
  # From here on, any failure (set -e, die) removes what up made so far.
  trap 'echo "netns-testbed: up failed, removing the partial bed" >&2; down' EXIT

  mkdir -m 700 "$DIR"
  ip netns add "$SW"
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  local i ns
  for ((i = 0; i < k; i++)); do
    ns=$(ns_of $i)
    ip netns add "$ns"
    ip -n "$SW" link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "h$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(ip_of $i)/24" dev eth0
    ip -n "$ns" link set eth0 up
    if ((rate > 0)); then
      tc -n "$ns" qdisc add dev eth0 root tbf rate "${rate}mbit" burst 512kb latency 50ms
    fi
    echo "$(ip_of $i) slots=1" >>"$DIR/hosts.txt"
  done

  if ((ssh)); then
    local sshd
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    [[ -x $sshd ]] || die "sshd not found (apt-get install openssh-server)"
    mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N '' -C dmlrun-testbed -f "$DIR/id_ed25519"
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    : >"$DIR/ssh_config"
    for ((i = 0; i < k; i++)); do
      mkdir "$DIR/h$i"
      ssh-keygen -q -t ed25519 -N '' -C dmlrun-testbed -f "$DIR/h$i/ssh_host_ed25519_key"
      cat >"$DIR/h$i/sshd_config" <<EOF
ListenAddress $(ip_of $i)
Port 22
HostKey $DIR/h$i/ssh_host_ed25519_key
PidFile $DIR/h$i/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 256
MaxSessions 64
EOF
      # Without -D sshd detaches; down finds it in the namespace.
      ip netns exec "$(ns_of $i)" "$sshd" -f "$DIR/h$i/sshd_config" -E "$DIR/h$i/sshd.log"
      printf 'Host h%d\n  HostName %s\n' $i "$(ip_of $i)" >>"$DIR/ssh_config"
    done
    cat >>"$DIR/ssh_config" <<EOF
Host *
  User root
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
EOF
    for ((i = 0; i < k; i++)); do
      wait_port "$(ns_of $(((i + 1) % k)))" "$(ip_of $i)" 22 ||
        die "sshd on host $i not answering after 10 s (see $DIR/h$i/sshd.log)"
    done
  fi
  trap - EXIT
  status
}

status() {
  local nss
  nss=$(bed_namespaces)
  [[ -n $nss ]] || { echo "no bed is up"; return 0; }
  local i=0 ns
  while ns=$(ns_of $i) && grep -qx "$ns" <<<"$nss"; do
    printf 'host %d  %-15s netns %s  %s\n' $i "$(ip_of $i)" "$ns" \
      "$(tc -n "$ns" qdisc show dev eth0 | awk '$2 == "tbf" {print "rate " $8}')"
    i=$((i + 1))
  done
  echo "hosts file: $DIR/hosts.txt"
  if [[ -e $DIR/ssh_config ]]; then
    echo "ssh from host 0 to host 1:"
    echo "  ip netns exec $(ns_of 0) ssh -F $DIR/ssh_config h1 hostname"
    echo "run dmlrun from host 0:"
    echo "  ip netns exec $(ns_of 0) dmlrun -ssh 'ssh -F $DIR/ssh_config' -hosts $DIR/hosts.txt train.yaml"
  fi
  echo "run a command on host I: $0 exec I CMD..."
}

down() {
  local ns rc=0 deadline pids
  for ns in $(bed_namespaces); do
    deadline=$((SECONDS + 10))
    while mapfile -t pids < <(ip netns pids "$ns") && ((${#pids[@]})); do
      if ((SECONDS >= deadline)); then
        echo "netns-testbed: $ns: processes ${pids[*]} still running" >&2
        rc=1
        break
      fi
      kill -KILL "${pids[@]}" 2>/dev/null || true
      sleep 0.05 # poll interval
    done
    ip netns delete "$ns" || rc=1
  done
  rm -rf "$DIR"
  return $rc
}

cmd=${1:-}
shift || true
case $cmd in
  up) up "$@" ;;
  down) down ;;
  status) status ;;
  exec)
    [[ ${1:-} =~ ^[0-9]+$ ]] || die "exec I CMD..."
    i=$1
    shift
    exec ip netns exec "$(ns_of "$i")" "$@"
    ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
