#!/usr/bin/env bash
# What a hostile client costs the director, on loopback (no root needed):
#   - memory per idle TCP connection and per idle UDP flow (the growth of
#     the process's RSS divided by the count), Fulcrum and HAProxy side by
#     side for TCP (HAProxy has no UDP);
#   - the director's CPU while it refuses connections at max_connections.
# Needs python3 (and haproxy for the TCP comparison); build first:
#   cargo build --release && bench/limits.sh
# N (default 4000) idle connections and flows, FLOOD (default 20000)
# refused connections.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
N=${N:-4000}
FLOOD=${FLOOD:-20000}
W=$(mktemp -d /tmp/fulcrum-limits.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
for tool in python3 "$BIN"; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)"

cat > "$W/client.py" <<'PY'
import socket, sys, time
mode, n, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if mode == "hold":            # open n idle TCP connections, say so, hold them
    held = [socket.create_connection((host, port)) for _ in range(n)]
    print("open", flush=True); sys.stdin.read()
elif mode == "udp":           # one datagram from each of n sockets, held open
    held = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.77.0.200", 0)); s.sendto(b"x", (host, port)); held.append(s)
        if i % 200 == 199: time.sleep(0.02)
    print("open", flush=True); sys.stdin.read()
elif mode == "flood":         # n connection attempts, 1,000 at a time, left waiting
    for _ in range(n // 1000):
        batch = []
        for _ in range(1000):
            s = socket.socket(); s.setblocking(False)
            s.connect_ex((host, port)); batch.append(s)
        time.sleep(0.2)
        for s in batch: s.close()
    print(n, flush=True)
PY

rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Hold N of something against PID while measuring its RSS growth (KiB).
held_growth() { # pid mode host port
  local before after
  before=$(rss "$1")
  coproc HOLD { python3 "$W/client.py" "$2" "$N" "$3" "$4"; }
  read -r _ <&"${HOLD[0]}"
  sleep 1
  after=$(rss "$1")
  exec {HOLD[1]}>&-; wait "$HOLD_PID" 2>/dev/null || true
  echo $((after - before))
}
per() { echo $(( $1 * 1024 / N )); }

"$BIN" realserver --listen 127.77.0.11:8081 --name rs1 2>/dev/null & PIDS+=($!)
"$BIN" realserver --listen 127.77.0.11:5353 --name rs1 --udp 2>/dev/null & PIDS+=($!)
sleep 0.3

director() { # extra global lines
  cat > "$W/lvs.cf" <<CF
$1
virtual web {
 address = 127.77.0.1
 active = 1
 port = 8080
 scheduler = rr
 checktype = off
 server rs1 {
  address = 127.77.0.11
  port = 8081
  active = 1
 }
}
virtual dns {
 address = 127.77.0.1
 active = 1
 port = 53
 protocol = udp
 scheduler = rr
 checktype = off
 server rs1 {
  address = 127.77.0.11
  port = 5353
  active = 1
 }
}
CF
  rm -f "$W/c.sock"
  "$BIN" run --config "$W/lvs.cf" --control "$W/c.sock" 2>"$W/director.log" & DPID=$!; PIDS+=($DPID)
  for _ in $(seq 100); do [ -S "$W/c.sock" ] && break; sleep 0.05; done
  [ -S "$W/c.sock" ] || { cat "$W/director.log" >&2; echo "bench: the director did not start" >&2; exit 1; }
}

echo "== memory per idle connection and flow (N=$N)"
# A fresh director for each, so memory freed by one is not reused by the
# other.
director ""
tcp=$(held_growth "$DPID" hold 127.77.0.1 8080)
echo "fulcrum  TCP: $((tcp)) KiB for $N idle connections: $(per "$tcp") bytes each"
kill "$DPID"; wait "$DPID" 2>/dev/null || true
director ""
udp=$(held_growth "$DPID" udp 127.77.0.1 53)
echo "fulcrum  UDP: $((udp)) KiB for $N idle flows: $(per "$udp") bytes each"
kill "$DPID"; wait "$DPID" 2>/dev/null || true

if command -v haproxy >/dev/null; then
  cat > "$W/haproxy.cfg" <<HA
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 900s
  timeout server 900s
listen web
  bind 127.77.0.2:8080
  server rs1 127.77.0.11:8081
HA
  haproxy -f "$W/haproxy.cfg" -db 2>"$W/haproxy.log" & HPID=$!; PIDS+=($HPID)
  sleep 0.5
  h=$(held_growth "$HPID" hold 127.77.0.2 8080)
  echo "haproxy  TCP: $h KiB for $N idle connections: $(per "$h") bytes each"
  [ "$h" -gt 0 ] && python3 -c "print('ratio fulcrum/haproxy (TCP, memory per idle connection): %.2f' % ($tcp / $h))"
  kill "$HPID"
fi

echo "== CPU while $FLOOD connections are refused at max_connections = 100"
director "max_connections = 100"
coproc HOLD { python3 "$W/client.py" hold 100 127.77.0.1 8080; }
read -r _ <&"${HOLD[0]}"
t0=$(ticks "$DPID"); s0=$(date +%s.%N)
python3 "$W/client.py" flood "$FLOOD" 127.77.0.1 8080 >/dev/null
sleep 1.5 # the last queued ones are refused
t1=$(ticks "$DPID"); s1=$(date +%s.%N)
refused=$("$BIN" status --control "$W/c.sock" | sed -n 's/.*; \([0-9]*\) refused at the limit.*/\1/p' | head -1)
exec {HOLD[1]}>&-; wait "$HOLD_PID" 2>/dev/null || true
hz=$(getconf CLK_TCK)
python3 -c "
el = $s1 - $s0; cpu = ($t1 - $t0) / $hz
print('%d attempts in %.1f s, %s refused by the director; its CPU %.2f s = %.1f %% of a core' % ($FLOOD, el, '${refused:-0}', cpu, 100 * cpu / el))"
echo "log lines while refusing: $(wc -l < "$W/director.log")"
