#!/usr/bin/env bash
# The XDP data plane against the kernel's forwarding, on one namespaced
# set-up, side by side in the same run. Needs root, and:
#   apt-get install clang libbpf-dev netsniff-ng nftables ethtool wrk haproxy nginx-light
#   (and for PROFILE=1: bpftool jq)
#   cargo build --release
# Usage: bench/xdp.sh   (DUR seconds per measurement, default 5; RUNS rounds,
#                        default 3; PART=pps|cps|mem|vm|all, default all:
#                        all but vm; ONLY="redirect fulcrum_nat"
#                        measures only those pps configurations; PROFILE=1
#                        adds each XDP program's own ns per packet)
#
# pps: 64-byte UDP packets from a generator namespace (trafgen, one CPU,
# source ports 1000..60000: one flow each) through the director namespace
# to a sink namespace whose veth drops them in XDP and counts them. On the
# same veths, in turn: a bare XDP_DROP on the director (the generator's
# ceiling), a bare XDP program that only rewrites the MACs and redirects to
# the private veth (the forwarding ceiling of this set-up), kernel routing,
# nftables DNAT, Fulcrum's XDP plane by NAT and by direct routing. Each
# round measures every one; the medians and the ratios are printed.
#
# mem: the memory the program's maps take (the kernel's own account,
# `memlock` in /proc/PID/fdinfo), for the default tables of 1,048,576 IPv4
# and 262,144 IPv6 flows: per flow.
#
# vm: the pps comparison in ../shared/tools/ipvs-vm (Debian 6.1 under
# QEMU) against the kernel's IPVS NAT, for the record: there the emulated
# generator bounds everything, so the figures show that the planes work,
# not which is faster.
#
# cps: TCP connections per second with wrk (64 connections, a new
# connection per request) through Fulcrum's XDP NAT, Fulcrum's proxy plane
# and HAProxy, to nginx on two real servers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
DUR=${DUR:-5}
RUNS=${RUNS:-3}
PART=${PART:-all}
# ONLY: which of the pps configurations to measure (all by default).
ONLY=${ONLY:-drop redirect routing nft fulcrum_nat fulcrum_dr}
P=fx$$
W=$(mktemp -d /tmp/fulcrum-xdp-bench.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for n in xg xd xs xm cli dir lan rs1 rs2; do ip netns del "$P-$n" 2>/dev/null || true; done
  [ -n "${PROFILE:-}" ] && sysctl -qw kernel.bpf_stats_enabled=0
  [ -n "${KEEP:-}" ] && echo "bench: kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

for tool in ip clang trafgen nft ethtool "$BIN"; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool (see the head of this script)" >&2; exit 2; }
done
ns() { echo "$P-$1"; }
x() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bpf() { clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu "$@"; }
mac() { ip -n "$(ns "$1")" -o link show "$2" | sed 's/.*link\/ether \([0-9a-f:]*\).*/\1/'; }
bytes() { echo "$1" | sed 's/^/0x/; s/:/,0x/g'; }

pps_part() {
  # --- xg (g0) -- (d0) xd (d1) -- (s0) xs --------------------------------
  for n in xg xd xs; do ip netns add "$(ns $n)"; ip -n "$(ns $n)" link set lo up; done
  ip link add g0 netns "$(ns xg)" type veth peer name d0 netns "$(ns xd)"
  ip link add d1 netns "$(ns xd)" type veth peer name s0 netns "$(ns xs)"
  ip -n "$(ns xg)" addr add 10.201.1.10/24 dev g0; ip -n "$(ns xg)" link set g0 up
  ip -n "$(ns xd)" addr add 10.201.1.1/24 dev d0; ip -n "$(ns xd)" link set d0 up
  ip -n "$(ns xd)" addr add 10.201.2.1/24 dev d1; ip -n "$(ns xd)" link set d1 up
  ip -n "$(ns xs)" addr add 10.201.2.2/24 dev s0; ip -n "$(ns xs)" link set s0 up
  x xd sysctl -qw net.ipv4.ip_forward=1
  # The sink drops ARP too: the director knows its MAC for good.
  ip -n "$(ns xd)" neigh replace 10.201.2.2 lladdr "$(mac xs s0)" dev d1 nud permanent
  bpf -c "$ROOT/bench/xdp/drop.bpf.c" -o "$W/drop.o"
  bpf -DOUT="$(ip -n "$(ns xd)" -o link show d1 | cut -d: -f1)" -DDMAC="$(bytes "$(mac xs s0)")" \
    -DSMAC="$(bytes "$(mac xd d1)")" -c "$ROOT/bench/xdp/redirect.bpf.c" -o "$W/redirect.o"
  ip -n "$(ns xs)" link set dev s0 xdpdrv obj "$W/drop.o" sec xdp
  local DMAC; DMAC=$(mac xd d0)
  gen() { # the trafgen configuration for destination $1
    echo "{ eth(da=$DMAC), ipv4(saddr=10.201.1.10, daddr=$1, ttl=64), udp(sp=${SPORTS:-dinc(1000, 60000)}, dp=9), fill(0x41, 18) }"
  }
  gen 10.201.1.100 > "$W/vip.cfg"; gen 10.201.2.2 > "$W/sink.cfg"
  cat > "$W/nat.cf" <<CF
primary = 10.201.1.1
network = nat
dataplane = xdp
nat_router = 10.201.2.254 d1:1
virtual v {
 address = 10.201.1.100 d0:1
 active = 1
 protocol = udp
 port = 9
 scheduler = wlc
 checktype = off
 server s {
  address = 10.201.2.2
  active = 1
 }
}
CF
  sed 's/^network = nat/network = direct/' "$W/nat.cf" > "$W/dr.cf"
  counter() { x "$1" ethtool -S "$2" | awk '/rx_queue_0_xdp_drops/ {print $2}'; }
  # PROFILE=1: the director's XDP program's own time per packet, from the
  # kernel's BPF statistics (bpftool; kernel.bpf_stats_enabled costs a
  # little, so the rates of a profiled run are not the record).
  prog_time() {
    [ -n "${PROFILE:-}" ] || { echo "0 0"; return; }
    local id; id=$(ip -n "$(ns xd)" -d link show d0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1)
    [ -n "$id" ] || { echo "0 0"; return; }
    bpftool -j prog show id "$id" | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'
  }
  if [ -n "${PROFILE:-}" ]; then
    command -v bpftool >/dev/null && command -v jq >/dev/null ||
      { echo "bench: PROFILE=1 needs bpftool and jq" >&2; exit 2; }
    sysctl -qw kernel.bpf_stats_enabled=1
  fi
  # One measurement: set up $1, send to $2 for DUR s, count at ns $3 dev $4.
  measure() {
    local what=$1 cfg=$2 cns=$3 cdev=$4 f=""
    case $what in
      drop) ip -n "$(ns xd)" link set dev d0 xdpdrv obj "$W/drop.o" sec xdp ;;
      redirect) ip -n "$(ns xd)" link set dev d0 xdpdrv obj "$W/redirect.o" sec xdp ;;
      routing) ;;
      nft)
        x xd nft add table ip bench
        x xd nft add chain ip bench pre '{ type nat hook prerouting priority -100; }'
        x xd nft add rule ip bench pre ip daddr 10.201.1.100 udp dport 9 dnat to 10.201.2.2
        ;;
      fulcrum_nat|fulcrum_dr)
        f=$W/$what.cf; [ "$what" = fulcrum_nat ] && cp "$W/nat.cf" "$f" || cp "$W/dr.cf" "$f"
        # `ip netns exec` becomes the director: $! is its pid.
        ip netns exec "$(ns xd)" "$BIN" run --config "$f" --control "$W/ctl.sock" >"$W/$what.log" 2>&1 &
        local fp=$!
        for _ in $(seq 600); do [ -S "$W/ctl.sock" ] && break; sleep 0.1; done
        ;;
    esac
    sleep 0.5
    local a b p0 p1
    a=$(counter "$cns" "$cdev")
    p0=$(prog_time)
    x xg timeout -s KILL "$DUR" trafgen --dev g0 --conf "$W/$cfg" --cpus 1 -q >/dev/null 2>&1 || true
    sleep 0.2
    b=$(counter "$cns" "$cdev")
    p1=$(prog_time)
    if [ -n "${PROFILE:-}" ] && [ "$what" != routing ] && [ "$what" != nft ]; then
      echo "$p0 $p1" | awk -v w="$what" '{ n = $4 - $2; if (n > 0) printf "  %-12s program: %.0f ns per packet (%d runs)\n", w, ($3 - $1) / n, n }' >&2
    fi
    case $what in
      drop|redirect) ip -n "$(ns xd)" link set dev d0 xdpdrv off ;;
      nft) x xd nft delete table ip bench ;;
      fulcrum_*) kill "$fp"; wait "$fp" 2>/dev/null || true; rm -f "$W/ctl.sock" ;;
    esac
    echo $(( (b - a) / DUR / 1000 ))
  }
  echo "== pps: 64-byte UDP, kpps at the sink (DUR=${DUR}s, $RUNS rounds)"
  declare -A R
  for r in $(seq "$RUNS"); do
    for what in $ONLY; do
      case $what in
        drop) v=$(measure drop sink.cfg xd d0) ;;
        redirect|routing) v=$(measure "$what" sink.cfg xs s0) ;;
        *) v=$(measure "$what" vip.cfg xs s0) ;;
      esac
      R[$what]="${R[$what]:-} $v"
      printf '  round %d  %-12s %6s kpps\n' "$r" "$what" "$v"
    done
  done
  for what in $ONLY; do
    M[$what]=$(echo "${R[$what]}" | tr ' ' '\n' | grep . | median)
    printf '%-40s %6s kpps (median)\n' "$what" "${M[$what]}"
  done
  ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
  echo "Fulcrum XDP NAT / bare redirect:    $(ratio "${M[fulcrum_nat]:-}" "${M[redirect]:-}")x   (goal >= 0.9)"
  echo "Fulcrum XDP DR / bare redirect:     $(ratio "${M[fulcrum_dr]:-}" "${M[redirect]:-}")x   (goal >= 0.95)"
  echo "Fulcrum XDP NAT / nftables DNAT:    $(ratio "${M[fulcrum_nat]:-}" "${M[nft]:-}")x"
  echo "Fulcrum XDP NAT / kernel routing:   $(ratio "${M[fulcrum_nat]:-}" "${M[routing]:-}")x"
}

cps_part() {
  for tool in wrk haproxy nginx; do
    command -v "$tool" >/dev/null || { echo "bench: missing $tool (see the head of this script)" >&2; exit 2; }
  done
  ulimit -n 20000
  local VIP=10.202.1.100
  for n in cli dir lan rs1 rs2; do ip netns add "$(ns $n)"; ip -n "$(ns $n)" link set lo up; done
  ip link add eth0 netns "$(ns cli)" type veth peer name eth0 netns "$(ns dir)"
  ip -n "$(ns cli)" addr add 10.202.1.10/24 dev eth0; ip -n "$(ns cli)" link set eth0 up
  ip -n "$(ns dir)" addr add 10.202.1.2/24 dev eth0; ip -n "$(ns dir)" link set eth0 up
  ip -n "$(ns lan)" link add br0 type bridge; ip -n "$(ns lan)" link set br0 up
  ip link add p-dir netns "$(ns lan)" type veth peer name eth1 netns "$(ns dir)"
  ip -n "$(ns lan)" link set p-dir master br0 up
  ip -n "$(ns dir)" addr add 10.202.2.1/24 dev eth1; ip -n "$(ns dir)" link set eth1 up
  x dir sysctl -qw net.ipv4.ip_forward=1 net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  x cli sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  # XDP redirects into veths: GRO on the receiving ends; full checksums
  # from the senders (see docs/operations.md, "The XDP data plane").
  x cli ethtool -K eth0 gro on tx off >/dev/null
  x lan ethtool -K p-dir gro on >/dev/null
  for i in 1 2; do
    ip link add p-rs$i netns "$(ns lan)" type veth peer name eth0 netns "$(ns rs$i)"
    ip -n "$(ns lan)" link set p-rs$i master br0 up
    ip -n "$(ns rs$i)" addr add 10.202.2.$((2 + i))/24 dev eth0; ip -n "$(ns rs$i)" link set eth0 up
    ip -n "$(ns rs$i)" route add default via 10.202.2.254
    x rs$i ethtool -K eth0 tx off >/dev/null
    x rs$i sysctl -qw net.ipv4.tcp_max_tw_buckets=1024
    local D=$W/rs$i; mkdir -p "$D/tmp"
    cat > "$D/nginx.conf" <<NGX
daemon off; master_process on; worker_processes 1;
pid $D/nginx.pid; error_log $D/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http { access_log off;
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  server { listen 80 reuseport; location / { return 200 "rs$i\n"; } } }
NGX
    ip netns exec "$(ns rs$i)" nginx -c "$D/nginx.conf" -p "$D" >/dev/null 2>&1 & PIDS+=($!)
  done
  # The proxies listen on the director's own address; the XDP plane on the VIP.
  cat > "$W/haproxy.cfg" <<HAP
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen web
  bind 10.202.1.2:8002
  balance roundrobin
  server rs1 10.202.2.3:80
  server rs2 10.202.2.4:80
HAP
  cat > "$W/proxy.cf" <<CF
virtual web {
 address = 10.202.1.2
 active = 1
 port = 8001
 scheduler = rr
 checktype = off
 server rs1 {
  address = 10.202.2.3
  port = 80
  active = 1
 }
 server rs2 {
  address = 10.202.2.4
  port = 80
  active = 1
 }
}
CF
  cat > "$W/xdp.cf" <<CF
primary = 10.202.1.2
network = nat
dataplane = xdp
nat_router = 10.202.2.254 eth1:1
virtual web {
 address = $VIP eth0:1
 active = 1
 port = 80
 scheduler = rr
 checktype = off
 server rs1 {
  address = 10.202.2.3
  active = 1
 }
 server rs2 {
  address = 10.202.2.4
  active = 1
 }
}
CF
  cps() { x cli wrk -t2 -c64 -d"${DUR}s" -H "Connection: close" "$1" 2>&1 | awk '/Requests\/sec/ {print int($2)} /Socket errors|Non-2xx/ {print "  wrk: " $0 > "/dev/stderr"}'; }
  echo "== cps: TCP connections per second, wrk -c64 with Connection: close (DUR=${DUR}s, $RUNS rounds)"
  declare -A C
  for r in $(seq "$RUNS"); do
    ip netns exec "$(ns dir)" "$BIN" run --config "$W/xdp.cf" --control "$W/x.sock" >"$W/xdp.log" 2>&1 & local fp=$!
    for _ in $(seq 50); do [ -S "$W/x.sock" ] && break; sleep 0.1; done
    sleep 0.5
    v=$(cps "http://$VIP/"); C[xdp]="${C[xdp]:-} $v"; printf '  round %d  %-14s %7s conn/s\n' "$r" fulcrum_xdp "$v"
    kill $fp; wait $fp 2>/dev/null || true; rm -f "$W/x.sock"
    ip netns exec "$(ns dir)" "$BIN" run --config "$W/proxy.cf" --control "$W/p.sock" >"$W/proxy.log" 2>&1 & fp=$!
    for _ in $(seq 50); do [ -S "$W/p.sock" ] && break; sleep 0.1; done
    # The proxy plane's director is not the real servers' gateway: they
    # answer it directly.
    sleep 0.5
    v=$(cps "http://10.202.1.2:8001/"); C[proxy]="${C[proxy]:-} $v"; printf '  round %d  %-14s %7s conn/s\n' "$r" fulcrum_proxy "$v"
    kill $fp; wait $fp 2>/dev/null || true; rm -f "$W/p.sock"
    ip netns exec "$(ns dir)" haproxy -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 & fp=$!
    sleep 0.5
    v=$(cps "http://10.202.1.2:8002/"); C[haproxy]="${C[haproxy]:-} $v"; printf '  round %d  %-14s %7s conn/s\n' "$r" haproxy "$v"
    kill $fp; wait $fp 2>/dev/null || true
  done
  for k in xdp proxy haproxy; do
    M[$k]=$(echo "${C[$k]}" | tr ' ' '\n' | grep . | median)
    printf '%-40s %7s conn/s (median)\n' "$k" "${M[$k]}"
  done
  awk -v a="${M[xdp]}" -v b="${M[proxy]}" -v c="${M[haproxy]}" 'BEGIN {
    printf "Fulcrum XDP NAT / Fulcrum proxy:    %.2fx\nFulcrum XDP NAT / HAProxy:          %.2fx\n", a / b, a / c }'
}

mem_part() {
  ip netns add "$(ns xm)"; ip -n "$(ns xm)" link set lo up
  ip -n "$(ns xm)" link add m0 type veth peer name m1
  ip -n "$(ns xm)" link set m0 up; ip -n "$(ns xm)" link set m1 up
  cat > "$W/mem.cf" <<CF
dataplane = xdp
network = nat
virtual v {
 address = 10.203.0.100 m0:1
 active = 1
 port = 80
 checktype = off
 server s {
  address = 10.203.0.2
  active = 1
 }
}
CF
  ip netns exec "$(ns xm)" "$BIN" run --config "$W/mem.cf" --control "$W/m.sock" >"$W/mem.log" 2>&1 &
  local fp=$!
  for _ in $(seq 50); do [ -S "$W/m.sock" ] && break; sleep 0.1; done
  echo "== mem: the program's maps (memlock, as the kernel accounts them)"
  local total=0 v4=0 v4n=1 v6=0 v6n=1
  for fd in /proc/$fp/fdinfo/*; do
    grep -q '^map_type' "$fd" 2>/dev/null || continue
    local t e m k v
    t=$(awk '/^map_type/ {print $2}' "$fd"); e=$(awk '/^max_entries/ {print $2}' "$fd")
    m=$(awk '/^memlock/ {print $2}' "$fd"); k=$(awk '/^key_size/ {print $2}' "$fd"); v=$(awk '/^value_size/ {print $2}' "$fd")
    printf '  map type %-2s entries %-8s key %-3s value %-5s %10s bytes\n' "$t" "$e" "$k" "$v" "$m"
    total=$((total + m))
    # The flow tables: arrays of 4-slot buckets, 128 bytes (IPv4) and 256
    # bytes (IPv6); one slot a flow, NAT ones too.
    if [ "$t" = 2 ] && [ "$v" = 128 ]; then v4=$((v4 + m)); v4n=$((e * 4)); fi
    if [ "$t" = 2 ] && [ "$v" = 256 ]; then v6=$((v6 + m)); v6n=$((e * 4)); fi
  done
  kill $fp; wait $fp 2>/dev/null || true
  echo "all maps: $((total / 1048576)) MiB"
  echo "IPv4 flows, room for $v4n: $((v4 / 1048576)) MiB, $((v4 / v4n)) bytes per flow (NAT, DR and tunnel alike)"
  echo "IPv6 flows, room for $v6n: $((v6 / 1048576)) MiB, $((v6 / v6n)) bytes per flow"
}

vm_part() {
  local VMTOOL=${IPVS_VM:-$ROOT/../shared/tools/ipvs-vm}
  [ -x "$VMTOOL" ] || { echo "bench: needs $VMTOOL" >&2; exit 2; }
  bpf -c "$ROOT/bench/xdp/drop.bpf.c" -o "$W/drop.o"
  cat > "$W/vm.sh" <<VMS
FULCRUM=$BIN; DUR=$DUR; DROP=$W/drop.o
VMS
  cat >> "$W/vm.sh" <<'VMS'
set -u
modprobe veth; modprobe ip_vs; modprobe ip_vs_rr; modprobe nf_tables 2>/dev/null; modprobe nft_nat 2>/dev/null
ip netns add xg; ip netns add xs
ip link add g0 netns xg type veth peer name d0
ip link add d1 type veth peer name s0 netns xs
ip -n xg addr add 10.201.1.10/24 dev g0; ip -n xg link set g0 up; ip -n xg link set lo up
ip addr add 10.201.1.1/24 dev d0; ip link set d0 up
ip addr add 10.201.2.1/24 dev d1; ip link set d1 up
ip -n xs addr add 10.201.2.2/24 dev s0; ip -n xs link set s0 up
sysctl -qw net.ipv4.ip_forward=1
mac() { ip -n "$1" -o link show "$2" 2>/dev/null | sed 's/.*link\/ether \([0-9a-f:]*\).*/\1/'; }
ip neigh replace 10.201.2.2 lladdr "$(mac xs s0)" dev d1 nud permanent
ip -n xs link set dev s0 xdpdrv obj "$DROP" sec xdp
DMAC=$(ip -o link show d0 | sed 's/.*link\/ether \([0-9a-f:]*\).*/\1/')
echo "{ eth(da=$DMAC), ipv4(saddr=10.201.1.10, daddr=10.201.1.100, ttl=64), udp(sp=dinc(1000, 60000), dp=9), fill(0x41, 18) }" > /tmp/vip.cfg
# count NS DEV: the XDP drops counted on DEV (in NS, or the VM's own with "").
count() {
  if [ -z "$1" ]; then "$ETHTOOL" -S "$2"; else ip netns exec "$1" "$ETHTOOL" -S "$2"; fi |
    awk '/rx_queue_0_xdp_drops/ {print $2}'
}
run() { # what, counting ns, dev
  local a b
  a=$(count "$2" "$3")
  (ip netns exec xg timeout -s KILL "$DUR" "$TRAFGEN" --dev g0 --conf /tmp/vip.cfg --cpus 1 -q >/dev/null 2>&1) 2>/dev/null
  sleep 0.5
  b=$(count "$2" "$3")
  echo "$1 $(( (b - a) / DUR / 1000 ))"
}
ip link set dev d0 xdpdrv obj "$DROP" sec xdp
run drop "" d0
ip link set dev d0 xdpdrv off
ipvsadm -A -u 10.201.1.100:9 -s rr; ipvsadm -a -u 10.201.1.100:9 -r 10.201.2.2:9 -m
ip addr add 10.201.1.100/32 dev d0
run ipvs_nat xs s0
ipvsadm -C; ip addr del 10.201.1.100/32 dev d0
if "$NFT" add table ip bench 2>/dev/null; then
  "$NFT" add chain ip bench pre '{ type nat hook prerouting priority -100; }'
  "$NFT" add rule ip bench pre ip daddr 10.201.1.100 udp dport 9 dnat to 10.201.2.2
  run nft_dnat xs s0
  "$NFT" delete table ip bench
fi
cat > /tmp/x.cf <<CF
dataplane = xdp
network = nat
nat_router = 10.201.2.254 d1:1
virtual v {
 address = 10.201.1.100 d0:1
 active = 1
 protocol = udp
 port = 9
 checktype = off
 server s {
  address = 10.201.2.2
  active = 1
 }
}
CF
"$FULCRUM" run --config /tmp/x.cf --control /tmp/x.sock 2>/tmp/x.log &
for i in $(seq 100); do [ -S /tmp/x.sock ] && break; sleep 0.1; done
sleep 0.5
run fulcrum_xdp_nat xs s0
kill %1 2>/dev/null
VMS
  local tg nf et
  tg=$(command -v trafgen); nf=$(command -v nft); et=$(command -v ethtool)
  sed -i "1i TRAFGEN=$tg; NFT=$nf; ETHTOOL=$et" "$W/vm.sh"
  echo "== vm: 64-byte UDP kpps inside the VM (kernel 6.1, TCG), DUR=${DUR}s"
  "$VMTOOL" --add "$BIN" --add "$tg" --add "$nf" --add "$et" --add "$W/drop.o" --timeout 600 "$W/vm.sh"
}

declare -A M
case $PART in
  pps) pps_part ;;
  cps) cps_part ;;
  mem) mem_part ;;
  vm) vm_part ;;
  all) pps_part; cps_part; mem_part ;;
  *) echo "bench: PART is pps, cps, mem, vm or all" >&2; exit 2 ;;
esac
