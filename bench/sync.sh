#!/usr/bin/env bash
# Connection sync from the XDP plane: how many entries a second Fulcrum's
# sender gets out, what is lost, and its CPU per entry against the kernel's
# own master sync daemon. Needs root, and:
#   apt-get install clang libbpf-dev netsniff-ng
#   (the VM part: ../shared/tools/ipvs-vm)
# Usage: bench/sync.sh   (FLOWS new flows per run, default 500000; RATE for
#                         the paced run, default 100000 a second; RUNS
#                         rounds, default 3; PART=host|vm|all, default all)
#
# host: two namespaces joined by a veth (a quiet link). In the first,
# `sync_send send` (crates/fulcrum/benches/sync_send.rs) loads Fulcrum's
# XDP program with a UDP service, turns sending on, and makes FLOWS new
# flows through it — three datagrams each (BPF_PROG_TEST_RUN, repeated),
# from as many client addresses and ports — while Fulcrum's real sender
# thread reads the program's reports and multicasts the messages; in the
# second, `sync_send receive` counts the entries that arrive. Once as fast
# as the generator can, once paced at RATE flows a second. Prints the
# medians: flows made a second, entries received a second of making, the
# loss, and the sender thread's CPU per entry.
#
# vm: in ../shared/tools/ipvs-vm (Debian 6.1 under QEMU, the same emulated
# CPU for both): trafgen makes 59,001 new UDP flows (three datagrams each)
# through a director — first the kernel's IPVS with its master sync daemon,
# then Fulcrum's XDP plane with its sender — and a kernel backup in another
# namespace takes the messages. The sending thread's CPU time (the kernel's
# `ipvs-m` thread, Fulcrum's `fulcrum-syncd`) per entry the backup holds,
# side by side. (The kernel builds its entries in the packet path, outside
# its thread; Fulcrum's program only notes the flow there, and the thread
# builds the entries: the thread's figure is Fulcrum's whole userspace cost.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
FLOWS=${FLOWS:-500000}
RATE=${RATE:-100000}
RUNS=${RUNS:-3}
PART=${PART:-all}
W=$(mktemp -d)
P=sy$$
cleanup() {
  ip netns del "$P-a" 2>/dev/null || true
  ip netns del "$P-b" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release --locked -q)
BENCH=$(cd "$ROOT" && cargo bench --locked -q -p fulcrum --bench sync_send --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*sync_send[^"]*"' | tail -1 | sed 's/"executable":"\(.*\)"/\1/')
[ -x "$BENCH" ] || { echo "bench: cannot build the sync_send bench" >&2; exit 2; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

host_part() {
  ip netns add "$P-a"; ip netns add "$P-b"
  ip -n "$P-a" link add eth0 type veth peer name eth0 netns "$P-b"
  ip -n "$P-a" addr add 10.7.0.1/24 dev eth0; ip -n "$P-b" addr add 10.7.0.2/24 dev eth0
  for n in a b; do ip -n "$P-$n" link set eth0 up; ip -n "$P-$n" link set lo up; done
  for mode in fast paced; do
    local rates="" recv="" loss="" cpu=""
    for r in $(seq "$RUNS"); do
      ip netns exec "$P-b" "$BENCH" receive eth0 > "$W/recv" &
      local rp=$!
      sleep 0.5
      if [ "$mode" = fast ]; then
        ip netns exec "$P-a" "$BENCH" send eth0 "$FLOWS" > "$W/send"
      else
        ip netns exec "$P-a" "$BENCH" send eth0 "$FLOWS" "$RATE" > "$W/send"
      fi
      wait "$rp"
      if grep -q '^skipped' "$W/send"; then cat "$W/send"; return; fi
      local made got secs
      made=$(field flows "$W/send"); secs=$(field made_s "$W/send")
      got=$(field received_entries "$W/recv")
      rates="$rates $(field flows_per_s "$W/send")"
      recv="$recv $(awk -v g="$got" -v s="$secs" 'BEGIN {printf "%.0f", g / s}')"
      loss="$loss $(awk -v g="$got" -v m="$made" 'BEGIN {printf "%.4f", 100 * (m - g) / m}')"
      cpu="$cpu $(field sender_cpu_ns_per_entry "$W/send")"
      echo "round $r $mode: $(tr '\n' ' ' < "$W/send") $(tr '\n' ' ' < "$W/recv")"
    done
    echo "$mode: flows made/s $(echo $rates | tr ' ' '\n' | median), entries received/s $(echo $recv | tr ' ' '\n' | median), lost $(echo $loss | tr ' ' '\n' | median) %, sender CPU $(echo $cpu | tr ' ' '\n' | median) ns/entry"
  done
}

vm_part() {
  local VMTOOL=${IPVS_VM:-$ROOT/../shared/tools/ipvs-vm}
  [ -x "$VMTOOL" ] || { echo "bench: needs $VMTOOL" >&2; exit 2; }
  local tg
  tg=$(command -v trafgen) || { echo "bench: needs trafgen (netsniff-ng)" >&2; exit 2; }
  cat > "$W/vm.sh" <<VMS
FULCRUM=$BIN; TRAFGEN=$tg
VMS
  cat >> "$W/vm.sh" <<'VMS'
set -u
modprobe veth; modprobe ip_vs; modprobe ip_vs_rr
# gen (10.9.0.10) -- eth0 [director: the VM itself] d1 -- peer1, d2 -- peer2:
# a kernel backup for each run, in a namespace of its own (so each starts
# with an empty connection table).
ip netns add gen
ip link add d0 type veth peer name eth0 netns gen
ip -n gen addr add 10.9.0.10/24 dev eth0; ip -n gen link set eth0 up; ip -n gen link set lo up
ip addr add 10.9.0.1/24 dev d0; ip link set d0 up
sysctl -qw net.ipv4.ip_forward=1
DMAC=$(ip -o link show d0 | sed 's/.*link\/ether \([0-9a-f:]*\).*/\1/')
# Three packets per source port (three packet definitions, each counting
# the port up): 59,001 new flows, each at its third packet.
# Client addresses 10.9.0.11.. on gen's side, one per run: fresh flows.
for c in 11 12 13 14; do
  ip -n gen addr add "10.9.0.$c/24" dev eth0
  p="{ eth(da=$DMAC), ipv4(saddr=10.9.0.$c, daddr=10.9.0.100, ttl=64), udp(sp=dinc(1000, 60000), dp=53), fill(0x41, 18) }"
  printf '%s\n%s\n%s\n' "$p" "$p" "$p" > "/tmp/flows$c.cfg"
done
backup() { # N: namespace peerN behind dN, a kernel backup daemon on it
  ip netns add "peer$1"
  ip link add "d$1" type veth peer name eth0 netns "peer$1"
  ip addr add "10.9.$(( $1 + 1 )).1/24" dev "d$1"; ip link set "d$1" up
  ip -n "peer$1" addr add "10.9.$(( $1 + 1 )).2/24" dev eth0
  ip -n "peer$1" link set eth0 up; ip -n "peer$1" link set lo up
  ip netns exec "peer$1" ipvsadm -A -u 10.9.0.100:53 -s rr
  ip netns exec "peer$1" ipvsadm -a -u 10.9.0.100:53 -r 10.9.1.1:53 -g
  ip netns exec "peer$1" ipvsadm --start-daemon backup --mcast-interface eth0
}
synced() { ip netns exec "peer$1" ipvsadm -L -n -c | grep -c "10.9.0.$2:" ; }
# The VM's busy CPU ticks (user, nice, system, irq, softirq; all CPUs).
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
backup 1; backup 2
# The real server: a MAC nobody answers to, behind d1 (the frames are dropped).
ip route replace 10.9.1.0/24 dev d1
ip neigh replace 10.9.1.1 lladdr 02:00:00:00:00:01 dev d1 nud permanent
ticks_of() { # comm prefix: utime + stime of those threads, in ticks
  local t=0 f
  for f in /proc/[0-9]*/task/[0-9]*; do
    case "$(cat "$f/comm" 2>/dev/null)" in
      "$1"*) t=$(( t + $(awk '{print $14 + $15}' "$f/stat") )) ;;
    esac
  done
  echo "$t"
}
gen() { ip netns exec gen "$TRAFGEN" --dev eth0 --conf "/tmp/flows$1.cfg" -n 177003 --cpus 1 -q >/dev/null 2>&1; }
# measure WHO CLIENT: the run's busy ticks and its sending thread's ticks.
measure() {
  local a b ta tb
  a=$(busy); ta=$(ticks_of "$1"); gen "$2"; sleep 3; b=$(busy); tb=$(ticks_of "$1")
  echo "$(( b - a )) $(( tb - ta ))"
}

# The kernel's IPVS: without sync, then its master daemon on d1.
ipvsadm -A -u 10.9.0.100:53 -s rr; ipvsadm -a -u 10.9.0.100:53 -r 10.9.1.1:53 -g
ip addr add 10.9.0.100/32 dev lo
sleep 1
set -- $(measure ipvs-m 11); koff=$1
ipvsadm --start-daemon master --mcast-interface d1
sleep 1
set -- $(measure ipvs-m 12); kon=$1; kt=$2
echo "kernel $kt ticks, $(synced 1 12) synced; busy $koff without sync, $kon with"
ipvsadm --stop-daemon master; ipvsadm -C; ip addr del 10.9.0.100/32 dev lo

# Fulcrum's XDP plane: its sender on d2, then without it.
cat > /tmp/x.cf <<CF
dataplane = xdp
network = direct
syncdaemon = 1
syncd_role = master
syncd_iface = d2
virtual v {
 address = 10.9.0.100 d0:1
 active = 1
 protocol = udp
 port = 53
 checktype = off
 server s {
  address = 10.9.1.1
  active = 1
 }
}
CF
"$FULCRUM" run --config /tmp/x.cf --control /tmp/x.sock 2>/tmp/x.log &
for i in $(seq 100); do [ -S /tmp/x.sock ] && break; sleep 0.1; done
sleep 1
set -- $(measure fulcrum-syncd 13); fon=$1; ft=$2
"$FULCRUM" status --control /tmp/x.sock | grep 'connection sync'
# Idle: what the sender costs when nothing happens.
a=$(ticks_of fulcrum-syncd); sleep 5; b=$(ticks_of fulcrum-syncd)
echo "fulcrum idle $(( b - a )) ticks in 5 s"
"$FULCRUM" adm --control /tmp/x.sock --stop-daemon master
sleep 1
set -- $(measure fulcrum-syncd 14); foff=$1
echo "fulcrum $ft ticks, $(synced 2 13) synced; busy $foff without sync, $fon with"
kill %1 2>/dev/null
VMS
  "$VMTOOL" --add "$BIN" --add "$tg" --timeout 600 "$W/vm.sh" | tee "$W/vm.out"
  awk '/^kernel [0-9]/ {kt=$2; kn=$4; kb=$10 - $7} /^fulcrum [0-9]/ {ft=$2; fn=$4; fb=$10 - $7}
       END { if (kn > 0 && fn > 0) {
               printf "sending thread per entry: kernel ipvs-m %.1f us, fulcrum-syncd %.1f us (%.2fx)\n",
                 kt * 10000 / kn, ft * 10000 / fn, (ft / fn) / ((kt > 0 ? kt : 0.5) / kn)
               printf "whole VM per entry, with sync less without: kernel %.1f us, fulcrum %.1f us (%.2fx)\n",
                 kb * 10000 / kn, fb * 10000 / fn, (fb / fn) / ((kb > 0 ? kb : 0.5) / kn) } }' "$W/vm.out"
}

case "$PART" in
  host) host_part ;;
  vm) vm_part ;;
  all) host_part; vm_part ;;
  *) echo "bench: PART=host|vm|all" >&2; exit 2 ;;
esac
