# Helpers for the scenario scripts run in the IPVS VM (tests/ipvs_scenarios.rs
# puts this file first; $FULCRUM is the binary under test).
set -u
modprobe veth; modprobe bridge
sysctl -qw net.ipv4.ip_forward=1

# ns NAME: an empty network namespace with lo up.
ns() { ip netns add "$1"; ip -n "$1" link set lo up; }

# plug NS BRIDGE ADDR/LEN [GATEWAY]: a veth from namespace NS (eth0) into BRIDGE.
plug() {
  local n=$1 br=$2 addr=$3 gw=${4:-}
  ip link add "v-$n" type veth peer name eth0 netns "$n"
  ip link set "v-$n" master "$br" up
  ip -n "$n" addr add "$addr" dev eth0
  ip -n "$n" link set eth0 up
  [ -z "$gw" ] || ip -n "$n" route add default via "$gw"
}

# bridge NAME [ADDR/LEN]: a bridge in the root namespace.
bridge() {
  ip link add "$1" type bridge; ip link set "$1" up
  [ -z "${2:-}" ] || ip addr add "$2" dev "$1"
}

# web NS NAME: busybox httpd in NS on port 80; GET / says NAME, and
# /cgi-bin/who says NAME and the client address the real server sees.
web() {
  local n=$1 name=$2
  mkdir -p "/srv/$n/cgi-bin"
  echo "$name" > "/srv/$n/index.html"
  printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s %%s\\n" "$REMOTE_ADDR"\n' "$name" > "/srv/$n/cgi-bin/who"
  chmod +x "/srv/$n/cgi-bin/who"
  ip netns exec "$n" httpd -f -p 80 -h "/srv/$n" &
  echo $! > "/srv/$n.pid"
}

# waitfor SECONDS CMD...: until CMD (a program or a function here, not
# `sh -c`: busybox sh would run its own `ip`) succeeds; 1 when it never did.
# The limit is wall-clock time: a CMD that itself waits (a `get` timing
# out) does not stretch it.
waitfor() {
  local end=$(( $(date +%s) + $1 )); shift
  while [ "$(date +%s)" -lt "$end" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# get NS URL: one HTTP GET from NS, its body (empty on failure).
get() { ip netns exec "$1" timeout 2 wget -q -O - "$2" 2>/dev/null; }

# director CONFIG SOCKET: `fulcrum run` in the background, logging to
# SOCKET.log, until its control socket is up.
director() {
  "$FULCRUM" run --config "$1" --control "$2" 2>"$2.log" &
  echo $! > "$2.pid"
  waitfor 20 test -S "$2" || { echo "director did not start:"; cat "$2.log"; exit 1; }
}

# has_addr NS ADDR: whether namespace NS holds ADDR.
has_addr() { ip -n "$1" addr show | grep -q "inet $2/"; }

# says SOCKET TEXT: whether `fulcrum status` at SOCKET says TEXT.
says() { "$FULCRUM" status --control "$1" | grep -q "$2"; }
