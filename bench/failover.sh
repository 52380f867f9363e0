#!/usr/bin/env bash
# Failover time: two directors on a bridge (network namespaces), the active
# one killed with SIGKILL (no hand-over advert), time until the backup has
# the virtual address (kernel address event, `ip -ts monitor address`).
# Fulcrum with keepalive = 0.1, deadtime = 0.35 against keepalived 2.2 with
# VRRPv3, advert_int 0.1, the same priorities (200 / 100), unicast, in the
# same run, alternating. Needs root and keepalived.
# Usage: bench/failover.sh   (RUNS=20)
# The take-over time from a kill is Master_Down minus the time since the
# last advert, so it spreads over one advert interval.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
RUNS=${RUNS:-20}
P=fo$$
W=$(mktemp -d /tmp/fulcrum-failover.XXXXXX)
VIP=10.220.0.100
A=10.220.0.1
B=10.220.0.2
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "$W/" 2>/dev/null || true
  sleep 0.2
  for n in pub d1 d2; do ip netns del "$P-$n" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 2; }
command -v keepalived >/dev/null || { echo "bench: keepalived is not installed (apt-get install keepalived)" >&2; exit 2; }

for n in pub d1 d2; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
ip -n "$P-pub" link add br0 type bridge
ip -n "$P-pub" link set br0 up
for i in 1 2; do
  ip link add "p$i" netns "$P-pub" type veth peer name eth0 netns "$P-d$i"
  ip -n "$P-pub" link set "p$i" master br0 up
  ip -n "$P-d$i" link set eth0 up
done
ip -n "$P-d1" addr add $A/24 dev eth0
ip -n "$P-d2" addr add $B/24 dev eth0

cat > "$W/lvs.cf" <<EOF
primary = $A
backup = $B
backup_active = 1
keepalive = 0.1
deadtime = 0.35
garp_delay = 0
virtual vip {
 address = $VIP eth0:1
 active = 1
 port = 80
 checktype = off
 server rs {
  address = 10.220.0.50
  active = 1
 }
}
EOF
for i in 1 2; do
  if [ $i = 1 ]; then src=$A peer=$B prio=200; else src=$B peer=$A prio=100; fi
  cat > "$W/k$i.conf" <<EOF
global_defs {
 router_id d$i
 vrrp_garp_master_delay 0
}
vrrp_instance VI_1 {
 state BACKUP
 interface eth0
 virtual_router_id 51
 priority $prio
 advert_int 0.1
 version 3
 unicast_src_ip $src
 unicast_peer {
  $peer
 }
 virtual_ipaddress {
  $VIP/32 dev eth0 label eth0:1
 }
}
EOF
done

has_vip() { ip -n "$P-$1" -o addr show dev eth0 | grep -q "inet $VIP/"; }
wait_until() { # seconds, command...
  local t=$1; shift
  local end=$(( $(date +%s%N) + t * 1000000000 ))
  until "$@"; do
    [ "$(date +%s%N)" -lt "$end" ] || return 1
    sleep 0.01
  done
}
# No command substitution around background processes: a subshell would
# run the EXIT trap. Results come back in STARTED and RESULT.
start() { # system node -> STARTED: the pids to kill
  local sys=$1 i=$2
  if [ "$sys" = fulcrum ]; then
    ip netns exec "$P-d$i" env FULCRUM_LOG=warn "$BIN" run --config "$W/lvs.cf" --control "$W/c$i.sock" >/dev/null 2>>"$W/fulcrum-d$i.log" &
    STARTED=$!
  else
    rm -f "$W/k$i.pid" "$W/k$i-vrrp.pid"
    ip netns exec "$P-d$i" keepalived -n -l -P -f "$W/k$i.conf" -p "$W/k$i.pid" -r "$W/k$i-vrrp.pid" >>"$W/keepalived-d$i.log" 2>&1 &
    local parent=$!
    wait_until 5 test -s "$W/k$i-vrrp.pid" || true
    STARTED="$parent $(cat "$W/k$i-vrrp.pid" 2>/dev/null)"
  fi
  PIDS+=($STARTED)
}
one_run() { # system -> RESULT: the failover time in ms
  local sys=$1 master backup mon t0 line ts
  start "$sys" 1
  master=$STARTED
  wait_until 10 has_vip d1 || { echo "bench: $sys d1 never took the address" >&2; return 1; }
  start "$sys" 2
  backup=$STARTED
  sleep 1.5
  has_vip d2 && { echo "bench: $sys d2 holds the address beside d1" >&2; return 1; }
  ip -n "$P-d2" -ts monitor address > "$W/mon" 2>&1 &
  mon=$!
  # A random phase against the advert interval, so the kill does not
  # always fall at the same point after the last advert.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.2 + (r % 100) / 1000 }')"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  kill -9 $master
  wait_until 5 grep -q "inet $VIP/" "$W/mon" || { echo "bench: $sys no take-over" >&2; return 1; }
  kill "$mon" 2>/dev/null || true
  line=$(grep -m1 "inet $VIP/" "$W/mon")
  [ -z "${DEBUG:-}" ] || echo "t0=$t0 $line" >&2
  ts=$(echo "$line" | sed -E 's/^\[([^]]+)\].*/\1/')
  RESULT=$(awk -v a="$t0" -v b="$(date -d "$ts" +%s.%N)" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }')
  # shellcheck disable=SC2086
  kill -9 $backup 2>/dev/null || true
  sleep 0.2
  ip -n "$P-d1" addr del $VIP/32 dev eth0 2>/dev/null || true
  ip -n "$P-d2" addr del $VIP/32 dev eth0 2>/dev/null || true
}

: > "$W/fulcrum.ms"; : > "$W/keepalived.ms"
for r in $(seq 1 "$RUNS"); do
  for sys in fulcrum keepalived; do
    one_run $sys
    echo "$RESULT" >> "$W/$sys.ms"
    echo "run $r $sys: $RESULT ms"
  done
done
stats() { sort -n "$W/$1.ms" | awk -v who="$1" '{ v[NR] = $1 } END {
  med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
  printf "%s: median %.1f ms, best %.1f ms, worst %.1f ms over %d runs\n", who, med, v[1], v[NR], NR }'; }
stats fulcrum
stats keepalived
paste <(sort -n "$W/fulcrum.ms") <(sort -n "$W/keepalived.ms") | awk '{ f[NR] = $1; k[NR] = $2 } END {
  m = (NR % 2) ? (NR + 1) / 2 : NR / 2;
  printf "ratio Fulcrum/keepalived: median %.2f, worst %.2f (below 1: Fulcrum faster)\n", f[m] / k[m], f[NR] / k[NR] }'
