#!/usr/bin/env bash
# Fulcrum's proxy data plane against HAProxy (TCP mode, splice) and nginx
# stream, on one namespaced topology, in the same run. Needs root, and:
#   apt-get install haproxy nginx-light libnginx-mod-stream wrk iperf3 curl
#   cargo build --release
# Usage: bench/proxy.sh            (DUR=seconds per measurement, default 5;
#                                   ROUNDS=rounds, default 5, targets alternating)
# Prints each measurement with wrk's errors, and the ratio Fulcrum / peer.
# Every proxy runs in the same director namespace with the same tuning (the
# fair one for short connections: TIME_WAIT reuse and a wide local port range
# on the director, few TIME_WAIT buckets on the real servers), so none is
# bound by running out of ports.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
DUR=${DUR:-5}
IDLE=${IDLE:-5000}
P=fb$$
W=$(mktemp -d /tmp/fulcrum-bench.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for n in cli dir lan rs1 rs2; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

for tool in ip wrk iperf3 haproxy nginx python3 "$BIN"; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool" >&2; exit 2; }
done
ulimit -n 20000

VIP=10.201.1.100
RS1=10.201.2.3
RS2=10.201.2.4
ns() { echo "$P-$1"; }

# --- topology: cli -- dir -- br0 -- rs1, rs2 ------------------------------
for n in cli dir lan rs1 rs2; do ip netns add "$(ns $n)"; ip -n "$(ns $n)" link set lo up; done
ip link add eth0 netns "$(ns cli)" type veth peer name eth0 netns "$(ns dir)"
ip -n "$(ns cli)" addr add 10.201.1.10/24 dev eth0; ip -n "$(ns cli)" link set eth0 up
ip -n "$(ns dir)" addr add 10.201.1.2/24 dev eth0; ip -n "$(ns dir)" addr add $VIP/24 dev eth0
ip -n "$(ns dir)" link set eth0 up
ip -n "$(ns lan)" link add br0 type bridge; ip -n "$(ns lan)" link set br0 up
ip link add p-dir netns "$(ns lan)" type veth peer name eth1 netns "$(ns dir)"
ip -n "$(ns lan)" link set p-dir master br0 up
ip -n "$(ns dir)" addr add 10.201.2.1/24 dev eth1; ip -n "$(ns dir)" link set eth1 up
i=0
for rs in $RS1 $RS2; do
  i=$((i+1))
  ip link add p-rs$i netns "$(ns lan)" type veth peer name eth0 netns "$(ns rs$i)"
  ip -n "$(ns lan)" link set p-rs$i master br0 up
  ip -n "$(ns rs$i)" addr add $rs/24 dev eth0; ip -n "$(ns rs$i)" link set eth0 up
done

# --- the same tuning for every proxy ---------------------------------------
ip netns exec "$(ns dir)" sysctl -q -w net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
for i in 1 2; do ip netns exec "$(ns rs$i)" sysctl -q -w net.ipv4.tcp_max_tw_buckets=1024; done
ip netns exec "$(ns cli)" sysctl -q -w net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

bg() { "$@" >"$W/$(basename "$1")-$RANDOM.log" 2>&1 & PIDS+=($!); }

# --- backends: nginx on :80 and iperf3 on rs1:5201 ------------------------
for i in 1 2; do
  D=$W/rs$i; mkdir -p $D/tmp
  cat > $D/nginx.conf <<NGX
daemon off; master_process on; worker_processes 1;
pid $D/nginx.pid; error_log $D/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http { access_log off;
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  keepalive_requests 1000000; keepalive_timeout 120s;
  server { listen 80 reuseport; location / { return 200 "rs$i\n"; } } }
NGX
  bg ip netns exec "$(ns rs$i)" nginx -c $D/nginx.conf -p $D
done
bg ip netns exec "$(ns rs1)" iperf3 -s -p 5201

# --- the three proxies, side by side on the director ----------------------
cat > $W/lvs.cf <<CF
virtual http {
	address = $VIP
	active = 1
	port = 8001
	scheduler = rr
	server rs1 {
		address = $RS1
		port = 80
		active = 1
	}
	server rs2 {
		address = $RS2
		port = 80
		active = 1
	}
}
virtual bulk {
	address = $VIP
	active = 1
	port = 5202
	scheduler = rr
	server rs1 {
		address = $RS1
		port = 5201
		active = 1
	}
}
CF
FULCRUM_LOG=warn bg ip netns exec "$(ns dir)" "$BIN" run --config $W/lvs.cf --control $W/fulcrum.sock

cat > $W/haproxy.cfg <<HA
global
  maxconn 7000
  nbthread ${HAPROXY_THREADS:-2}
defaults
  mode tcp
  option splice-auto
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend fe_http
  bind $VIP:8002
  default_backend be_http
backend be_http
  balance roundrobin
  server rs1 $RS1:80
  server rs2 $RS2:80
frontend fe_bulk
  bind $VIP:5203
  default_backend be_bulk
backend be_bulk
  server rs1 $RS1:5201
HA
bg ip netns exec "$(ns dir)" haproxy -db -f $W/haproxy.cfg

mkdir -p $W/ngx
cat > $W/ngx/nginx.conf <<NGX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off; worker_processes auto; pid $W/ngx/nginx.pid; error_log $W/ngx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 12000; }
stream {
  upstream rs { server $RS1:80; server $RS2:80; }
  upstream bulk { server $RS1:5201; }
  server { listen $VIP:8003; proxy_pass rs; }
  server { listen $VIP:5204; proxy_pass bulk; }
}
NGX
bg ip netns exec "$(ns dir)" nginx -c $W/ngx/nginx.conf -p $W/ngx

CLI="ip netns exec $(ns cli)"
for port in 8001 8002 8003; do
  for _ in $(seq 100); do $CLI curl -s --max-time 1 http://$VIP:$port/ >/dev/null && break; sleep 0.1; done
done

# --- measurements ---------------------------------------------------------
rss_of() { # total RSS in KiB of the processes matching a pattern inside the director
  local total=0
  for pid in $(pgrep -f "$1"); do
    [ "$(ip netns identify $pid 2>/dev/null)" = "$(ns dir)" ] || continue
    total=$((total + $(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)))
  done
  echo $total
}

cpu_of() { # total CPU ticks (utime+stime) of the processes matching a pattern in the director
  local total=0
  for pid in $(pgrep -f "$1"); do
    [ "$(ip netns identify $pid 2>/dev/null)" = "$(ns dir)" ] || continue
    total=$((total + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
  done
  echo $total
}

cat > $W/idle.py <<'PY'
import socket, sys, time
vip, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.create_connection((vip, port), timeout=5)
    socks.append(s)
print("ready", flush=True)
time.sleep(hold)
PY

# "connect C read R write W timeout T non-2xx N TOTAL" from wrk's output.
wrk_errors() {
  echo "$1" | awk '
    /Socket errors:/ { gsub(",", ""); c=$4; r=$6; w=$8; t=$10 }
    /Non-2xx or 3xx responses:/ { n=$5 }
    END { c+=0; r+=0; w+=0; t+=0; n+=0; printf "connect %d read %d write %d timeout %d non-2xx %d %d", c, r, w, t, n, c+r+w+t+n }'
}

declare -A R
measure() { # name port bulkport pattern
  local name=$1 port=$2 bport=$3 pat=$4
  local close keep
  # PROFILE=FILE records Fulcrum with perf during one phase (PROFILE_PHASE=close|keep, default keep).
  # PROFILE_CMD="perf trace -s -p %PID% -o FILE -- sleep 3" runs any command instead, for every proxy
  # (%PID% is its first process in the director, %NAME% its name).
  profile() {
    [ "${PROFILE_PHASE:-keep}" = "$1" ] || return 0
    local pid
    pid=$(for p in $(pgrep -f "$pat"); do [ "$(ip netns identify "$p" 2>/dev/null)" = "$(ns dir)" ] && echo "$p"; done | tail -1)
    if [ -n "${PROFILE_CMD:-}" ]; then
      local cmd=${PROFILE_CMD//%PID%/$pid}
      bash -c "${cmd//%NAME%/$name}" >/dev/null 2>&1 &
    elif [ -n "${PROFILE:-}" ] && [ "$name" = fulcrum ]; then
      perf record -e cpu-clock -F 2000 -g -o "$PROFILE" -p "$pid" -- sleep $((DUR - 1)) >/dev/null 2>&1 &
    fi
  }
  profile close
  close=$($CLI wrk -t2 -c64 -d${DUR}s -H 'Connection: close' http://$VIP:$port/ 2>&1 || true)
  local v_close v_keep v_p99 v_bulk v_cpu
  v_close=$(echo "$close" | awk '/Requests\/sec/ {print $2}')
  # wrk's errors: socket errors (connect, read, write, timeout) and non-2xx answers.
  local e_close e_keep
  e_close=$(wrk_errors "$close")
  profile keep
  local c0 c1
  c0=$(cpu_of "$pat")
  keep=$($CLI wrk -t2 -c64 -d${DUR}s --latency http://$VIP:$port/ 2>&1 || true)
  c1=$(cpu_of "$pat")
  v_keep=$(echo "$keep" | awk '/Requests\/sec/ {print $2}')
  e_keep=$(wrk_errors "$keep")
  local total
  total=$(echo "$keep" | awk '/requests in/ {print $1}')
  # CPU microseconds per keep-alive request (ticks are 1/100 s).
  v_cpu=$(python3 -c "print(round(($c1-$c0)*10000/max(1,$total), 2))")
  v_p99=$(echo "$keep" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  v_bulk=$($CLI iperf3 -c $VIP -p $bport -t $DUR -J 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))' || echo 0)
  local before after
  sleep 1
  before=$(rss_of "$pat")
  $CLI python3 $W/idle.py $VIP $port $IDLE 4 > $W/idle-$name.out &
  local ip=$!
  for _ in $(seq 100); do grep -q ready $W/idle-$name.out 2>/dev/null && break; sleep 0.1; done
  sleep 2
  after=$(rss_of "$pat")
  wait $ip || true
  local v_mem=$(( after / 1024 )) v_memd=$(( (after - before) / 1024 ))
  R[$name,close]+=" $v_close"; R[$name,keep]+=" $v_keep"; R[$name,cpu]+=" $v_cpu"
  R[$name,p99]+=" $v_p99"; R[$name,bulk]+=" $v_bulk"; R[$name,mem]+=" $v_mem"; R[$name,memdelta]+=" $v_memd"
  R[$name,errors]+=" $(( ${e_close##* } + ${e_keep##* } ))"
  printf '  %-8s close %10s req/s   keep-alive %10s req/s (%s us CPU/req)   p99 %7s ms   bulk %6s Gbit/s   RSS with %d idle conns %5s MiB (+%s)\n' \
    "$name" "$v_close" "$v_keep" "$v_cpu" "$v_p99" "$v_bulk" "$IDLE" "$v_mem" "$v_memd"
  printf '  %-8s wrk errors: close %s; keep-alive %s\n' "" "${e_close% *}" "${e_keep% *}"
}

echo "== $(date -u +%FT%TZ)  $(nproc) CPUs, DUR=${DUR}s, wrk -t2 -c64, $IDLE idle connections"
TARGETS=${TARGETS:-fulcrum haproxy nginx}
ROUNDS=${ROUNDS:-5}
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  for t in $TARGETS; do
    case $t in
      fulcrum) measure fulcrum 8001 5202 "fulcrum run --config $W/lvs.cf" ;;
      haproxy) measure haproxy 8002 5203 "haproxy -db -f $W/haproxy.cfg" ;;
      nginx) measure nginx 8003 5204 "nginx" ;;
    esac
  done
done

median() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:] if x]; print(statistics.median(v) if v else 0)" $1; }
echo
echo "medians over $ROUNDS rounds:"
declare -A M
for t in $TARGETS; do
  for m in close keep cpu p99 bulk mem memdelta; do M[$t,$m]=$(median "${R[$t,$m]}"); done
  errs=0; for e in ${R[$t,errors]}; do errs=$((errs + e)); done
  printf '  %-8s close %9.0f req/s   keep-alive %9.0f req/s (%s us CPU/req)   p99 %5.2f ms   bulk %5.2f Gbit/s   RSS %4.0f MiB (+%.0f for %d idle)   wrk errors %d\n' \
    "$t" "${M[$t,close]}" "${M[$t,keep]}" "${M[$t,cpu]}" "${M[$t,p99]}" "${M[$t,bulk]}" "${M[$t,mem]}" "${M[$t,memdelta]}" "$IDLE" "$errs"
done
ratio() { python3 -c "a,b=float('$1' or 0),float('$2' or 0); print(f'{a/b:.2f}' if b else 'n/a')"; }
echo
echo "ratios of medians (Fulcrum / peer; for p99, CPU and memory lower is better):"
for peer in $TARGETS; do
  [ "$peer" = fulcrum ] && continue
  printf '  vs %-8s close %s  keep-alive %s  bulk %s  p99 %s  CPU/req %s  memory %s\n' "$peer" \
    "$(ratio "${M[fulcrum,close]}" "${M[$peer,close]}")" "$(ratio "${M[fulcrum,keep]}" "${M[$peer,keep]}")" \
    "$(ratio "${M[fulcrum,bulk]}" "${M[$peer,bulk]}")" "$(ratio "${M[fulcrum,p99]}" "${M[$peer,p99]}")" \
    "$(ratio "${M[fulcrum,cpu]}" "${M[$peer,cpu]}")" "$(ratio "${M[fulcrum,mem]}" "${M[$peer,mem]}")"
done
