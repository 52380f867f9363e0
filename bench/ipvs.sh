#!/usr/bin/env bash
# Programming the kernel's IPVS table, Fulcrum against the real ipvsadm, in
# the VM whose kernel has IPVS (../shared/tools/ipvs-vm beside the
# repository; root). A table of S services (default 1000) x R real servers
# (default 10):
#   - full build: `ipvsadm -R` of the table into an empty kernel, against
#     `fulcrum adm -R` of the same lines into a running director (kernel
#     plane), and against `fulcrum reload` from an empty lvs.cf to the
#     table's lvs.cf;
#   - 1 % reload: the lvs.cf with 1 % of the services changed (a real server
#     re-weighted, one removed, one added), `fulcrum reload`.
# Each is run RUNS times (default 3), the table flushed in between; the
# median is printed, and the ratios. Build first:
#   cargo build --release && bench/ipvs.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FULCRUM_BIN:-$ROOT/target/release/fulcrum}
VM=${IPVS_VM:-$ROOT/../shared/tools/ipvs-vm}
S=${S:-1000}; R=${R:-10}; RUNS=${RUNS:-3}
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 2; }
[ -x "$VM" ] || { echo "bench: needs $VM" >&2; exit 2; }
W=$(mktemp -d /tmp/fulcrum-ipvs-bench.XXXXXX); trap 'rm -rf "$W"' EXIT

cat > "$W/run.sh" <<EOF2
S=$S; R=$R; RUNS=$RUNS; FULCRUM=$BIN
EOF2
cat >> "$W/run.sh" <<'EOF2'
set -u
modprobe ip_vs; modprobe ip_vs_wlc; modprobe dummy
ip link add d0 type dummy; ip link set d0 up
now() { echo "${EPOCHREALTIME/./}"; }     # microseconds (bash 5)
ms() { echo $(( ($2 - $1) / 1000 )); }
# The time the last change to the kernel's table took, from the log.
kernel_ms() { grep 'kernel IPVS table updated' /tmp/f.log | tail -1 | sed 's/.*us=\([0-9]*\).*/\1/' | awk '{printf "%d\n", $1 / 1000}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The table, as ipvsadm -R lines and as lvs.cf; `pct` marks the 1 % changed.
awk -v S="$S" -v R="$R" 'BEGIN { for (s = 0; s < S; s++) {
  vip = sprintf("10.%d.%d.%d", 1 + int(s / 65536), int(s / 256) % 256, s % 256)
  printf "-A -t %s:80 -s wlc\n", vip
  for (r = 0; r < R; r++) printf "-a -t %s:80 -r 192.168.%d.%d:80 -m -w 1\n", vip, int(r / 250), 1 + r % 250
} }' > /tmp/table.txt
gen_cf() { awk -v S="$S" -v R="$R" -v pct="$1" 'BEGIN { print "dataplane = ipvs"; print "network = nat"
  every = pct ? int(100 / pct) : 0
  for (s = 0; s < S; s++) {
    vip = sprintf("10.%d.%d.%d", 1 + int(s / 65536), int(s / 256) % 256, s % 256)
    changed = every && s % every == 0
    printf "virtual v%d {\n address = %s\n active = 1\n port = 80\n scheduler = wlc\n checktype = off\n", s, vip
    for (r = 0; r < R; r++) {
      if (changed && r == 1) continue
      w = (changed && r == 0) ? 5 : 1
      printf " server r%d {\n  address = 192.168.%d.%d\n  active = 1\n  weight = %d\n }\n", r, int(r / 250), 1 + r % 250, w
    }
    if (changed) printf " server extra {\n  address = 192.168.9.9\n  active = 1\n }\n"
    print "}"
  } }'
}
gen_cf 0 > /tmp/full.cf; gen_cf 1 > /tmp/one.cf
# The same 1 % change as ipvsadm commands.
awk -v S="$S" 'BEGIN { for (s = 0; s < S; s += 100) {
  vip = sprintf("10.%d.%d.%d", 1 + int(s / 65536), int(s / 256) % 256, s % 256)
  printf "-e -t %s:80 -r 192.168.0.1:80 -m -w 5\n-d -t %s:80 -r 192.168.0.2:80\n-a -t %s:80 -r 192.168.9.9:80 -m -w 1\n", vip, vip, vip
} }' > /tmp/one.txt
printf 'dataplane = ipvs\n' > /tmp/empty.cf
for i in $(seq "$RUNS"); do
  ipvsadm -C; t0=$(now); ipvsadm -R < /tmp/table.txt; t1=$(now); ms "$t0" "$t1" >> /tmp/ipvsadm
done
echo "check: $(ipvsadm -S -n | wc -l) lines in the kernel"
cp /tmp/empty.cf /tmp/lvs.cf
"$FULCRUM" run --config /tmp/lvs.cf --control /tmp/f.sock 2>/tmp/f.log &
for i in $(seq 100); do [ -S /tmp/f.sock ] && break; sleep 0.1; done
for i in $(seq "$RUNS"); do
  "$FULCRUM" adm --control /tmp/f.sock -C
  t0=$(now); "$FULCRUM" adm --control /tmp/f.sock -R < /tmp/table.txt; t1=$(now); ms "$t0" "$t1" >> /tmp/adm
  t0=$(now); "$FULCRUM" adm --control /tmp/f.sock -R < /tmp/one.txt; t1=$(now); ms "$t0" "$t1" >> /tmp/admone
  "$FULCRUM" adm --control /tmp/f.sock -C
  cp /tmp/full.cf /tmp/lvs.cf
  t0=$(now); "$FULCRUM" reload --control /tmp/f.sock >/dev/null; t1=$(now); ms "$t0" "$t1" >> /tmp/full
  kernel_ms >> /tmp/kfull
  cp /tmp/one.cf /tmp/lvs.cf
  t0=$(now); "$FULCRUM" reload --control /tmp/f.sock >/dev/null; t1=$(now); ms "$t0" "$t1" >> /tmp/one
  kernel_ms >> /tmp/kone
  cp /tmp/full.cf /tmp/lvs.cf; "$FULCRUM" reload --control /tmp/f.sock >/dev/null
  cp /tmp/empty.cf /tmp/lvs.cf; "$FULCRUM" reload --control /tmp/f.sock >/dev/null
done
echo "check: $(ipvsadm -S -n | wc -l) lines in the kernel after the last reload to an empty file"
a=$(median < /tmp/ipvsadm); b=$(median < /tmp/adm); c=$(median < /tmp/full); d=$(median < /tmp/one)
e=$(median < /tmp/kfull); f=$(median < /tmp/kone); g=$(median < /tmp/admone)
echo "table: $S services x $R real servers; median of $RUNS runs (ms)"
echo "ipvsadm -R          $a"
echo "fulcrum adm -R      $b   ($(awk -v x="$b" -v y="$a" 'BEGIN {printf "%.2f", x / y}')x ipvsadm)"
echo "fulcrum adm -R 1 %  $g   ($(awk -v x="$g" -v y="$b" 'BEGIN {printf "%.3f", x / y}')x a full adm -R)"
echo "fulcrum reload full $c   ($(awk -v x="$c" -v y="$a" 'BEGIN {printf "%.2f", x / y}')x ipvsadm)"
echo "fulcrum reload 1 %  $d   ($(awk -v x="$d" -v y="$c" 'BEGIN {printf "%.3f", x / y}')x a full reload)"
echo "of which programming the kernel: full $e, 1 % $f ($(awk -v x="$f" -v y="$e" 'BEGIN {printf "%.3f", x / y}')x); the rest reads, checks and diffs the whole lvs.cf"
kill -TERM %1; wait
EOF2
"$VM" --add "$BIN" --timeout 600 "$W/run.sh" > "$W/out" || { cat "$W/out"; exit 1; }
sed -n "/^check:/,\$p" "$W/out" | grep -v "^\["
