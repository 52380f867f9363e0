#!/bin/bash
# The web console's costs on the release build: a login (argon2) and the live
# view with 50 virtual servers of 4 real servers each (no root needed;
# `cargo build --release` first). Prints medians of 5 logins and 21 views.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
D=$(mktemp -d)
echo "measure-pass" | $BIN passwd --users $D/users admin 2>/dev/null
{
  echo "console = 127.0.0.1:18091"
  echo "console_users = $D/users"
  for v in $(seq 50); do
    echo "virtual vs$v {"; echo " address = 127.82.0.$v"; echo " active = 1"; echo " port = 8080"; echo " scheduler = wlc"; echo " checktype = off"
    for r in 1 2 3 4; do echo " server rs$r {"; echo "  address = 127.83.$v.$r"; echo "  port = 8081"; echo "  active = 1"; echo "  weight = $r"; echo " }"; done
    echo "}"
  done
} > $D/lvs.cf
FULCRUM_LOG=warn $BIN run --config $D/lvs.cf --control $D/c.sock 2>$D/log &
P=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18091/login && break; sleep 0.1; done
J=$D/jar
login() {
  curl -s -c $J -b $J http://127.0.0.1:18091/login -o $D/l.html
  N=$(grep -o 'name="csrf" value="[0-9a-f]*"' $D/l.html | grep -o '[0-9a-f]\{32\}')
  curl -s -c $J -b $J -o /dev/null -w "%{time_total}\n" -d "csrf=$N&user=admin&password=measure-pass" http://127.0.0.1:18091/login
}
echo "login (s):"; for i in 1 2 3 4 5; do login; done | sort -n | awk '{a[NR]=$1} END{print "  median", a[3]}'
echo "GET /live (s), 50 virtual servers x 4:"; for i in $(seq 21); do curl -s -b $J -o /dev/null -w "%{time_total}\n" http://127.0.0.1:18091/live; done | sort -n | awk '{a[NR]=$1} END{print "  median", a[11]}'
echo "GET / (s):"; for i in $(seq 21); do curl -s -b $J -o /dev/null -w "%{time_total}\n" http://127.0.0.1:18091/; done | sort -n | awk '{a[NR]=$1} END{print "  median", a[11]}'
echo "bytes of /live:"; curl -s -b $J http://127.0.0.1:18091/live | wc -c
kill $P; wait $P 2>/dev/null || true
rm -rf $D
