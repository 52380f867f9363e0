#!/usr/bin/env bash
# The monitor's cost: one director checking 1,000 real servers every second
# (10 virtual servers x 100 real servers, in a network namespace of its own:
# one listener on 0.0.0.0:8081 answers for every 127.1.V.S real server).
# Needs root. Usage: bench/monitor.sh   (CHECK=connect|http_get, DUR=30)
# Prints the director's CPU (% of one core, user+system) and memory; then,
# with PEER=ldirectord (apt-get install ldirectord), ldirectord doing the same
# checks (connect, every second) through Fulcrum as its ipvsadm, and the ratio.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
DUR=${DUR:-30}
CHECK=${CHECK:-connect}
N_VS=${N_VS:-10}
N_RS=${N_RS:-100}
NS=fm$$
W=$(mktemp -d /tmp/fulcrum-monitor.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" "$BIN" realserver --listen 0.0.0.0:8081 --name rs 2>/dev/null &
PIDS+=($!)

{
  for v in $(seq 1 "$N_VS"); do
    printf 'virtual vs%s {\n address = 127.0.1.%s\n active = 1\n port = 80\n scheduler = wlc\n checktype = %s\n check_interval = 1\n timeout = 5\n reentry = 0\n' "$v" "$v" "$CHECK"
    for s in $(seq 1 "$N_RS"); do
      printf ' server rs%s {\n  address = 127.1.%s.%s\n  port = 8081\n  active = 1\n  weight = 1\n }\n' "$s" "$v" "$s"
    done
    printf '}\n'
  done
} > "$W/lvs.cf"

# measure WHO PID: CPU (user+system, with reaped children) over DUR seconds.
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
measure() {
  local who=$1 pid=$2 t0 t1 s0 s1 rss
  t0=$(ticks "$pid"); s0=$(date +%s.%N)
  if [ -n "${PERF:-}" ]; then perf record -g -o "$PERF" -p "$pid" -- sleep "$DUR" 2>/dev/null; else sleep "$DUR"; fi
  t1=$(ticks "$pid"); s1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  awk -v who="$who" -v t="$((t1 - t0))" -v hz="$HZ" -v s0="$s0" -v s1="$s1" -v rss="$rss" -v n="$((N_VS * N_RS))" 'BEGIN {
    cpu = 100 * t / hz / (s1 - s0);
    printf "%s CPU: %.2f%% of one core over %.0f s (%.1f us per check); memory %.1f MiB RSS\n", who, cpu, s1 - s0, cpu / 100 * 1e6 / n, rss / 1024;
  }' | tee -a "$W/results"
}
in_table() { "$BIN" adm --control "$W/control.sock" -L -n | grep -c -- '^  -> 127' || true; }

ip netns exec "$NS" env FULCRUM_LOG=warn "$BIN" run --config "$W/lvs.cf" --control "$W/control.sock" 2>"$W/director.log" &
DIRECTOR=$!
PIDS+=($DIRECTOR)
for _ in $(seq 100); do [ -S "$W/control.sock" ] && break; sleep 0.1; done
sleep 3
echo "real servers in the table: $(in_table) of $((N_VS * N_RS)) (checktype $CHECK, every 1 s)"
measure "fulcrum monitor" "$DIRECTOR"

if [ "${PEER:-}" = ldirectord ]; then
  command -v ldirectord >/dev/null || { echo "bench: ldirectord is not installed" >&2; exit 2; }
  kill "$DIRECTOR"; wait "$DIRECTOR" 2>/dev/null || true
  rm -f "$W/control.sock"
  echo "# the table comes from ldirectord" > "$W/empty.cf"
  ip netns exec "$NS" env FULCRUM_LOG=warn "$BIN" run --config "$W/empty.cf" --control "$W/control.sock" 2>"$W/director.log" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -S "$W/control.sock" ] && break; sleep 0.1; done
  {
    printf 'checktimeout=5\ncheckinterval=1\nautoreload=no\nquiescent=no\nlogfile="%s/ld.log"\n' "$W"
    for v in $(seq 1 "$N_VS"); do
      printf 'virtual=127.0.1.%s:80\n' "$v"
      for s in $(seq 1 "$N_RS"); do printf '\treal=127.1.%s.%s:8081 masq\n' "$v" "$s"; done
      printf '\tchecktype=connect\n\tscheduler=wlc\n\tprotocol=tcp\n'
    done
  } > "$W/ld.cf"
  ip netns exec "$NS" unshare -m --propagation private sh -c \
    "mount --bind $BIN /usr/sbin/ipvsadm && exec env FULCRUM_CONTROL=$W/control.sock ldirectord -d $W/ld.cf start" >/dev/null 2>&1 &
  LD=$!
  PIDS+=($LD)
  for _ in $(seq 300); do [ "$(in_table)" -ge "$((N_VS * N_RS))" ] && break; sleep 0.2; done
  echo "real servers in the table (from ldirectord): $(in_table) of $((N_VS * N_RS))"
  measure "ldirectord" "$LD"
  awk '/CPU/ {gsub("%", "", $0); for (i = 1; i <= NF; i++) if ($i == "CPU:") c[NR] = $(i + 1)}
       END { if (c[2] > 0) printf "ratio fulcrum/ldirectord CPU: %.3f\n", c[1] / c[2] }' "$W/results"
fi
