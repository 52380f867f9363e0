# The kernel table across upgrades, behind Fulcrum's back, and through a
# reload the kernel half refuses. A client and two NAT real servers; the
# director in the root namespace. IPVS with a connection table of 1024
# entries, not the usual 4096: listings must say so.
modprobe ip_vs conn_tab_bits=10
ns client
ip link add dc type veth peer name eth0 netns client
ip addr add 10.0.0.1/24 dev dc; ip link set dc up
ip -n client addr add 10.0.0.2/24 dev eth0; ip -n client link set eth0 up
bridge br1 192.168.1.254/24
for i in 1 2; do ns rs$i; plug rs$i br1 192.168.1.$i/24 192.168.1.254; web rs$i rs$i; done
cat > /etc/lvs.cf <<'CF'
network = nat
virtual web {
    active = 1
    address = 10.0.0.100 dc:1
    port = 80
    scheduler = rr
    checktype = connect
    server rs1 {
        address = 192.168.1.1
        active = 1
    }
    server rs2 {
        address = 192.168.1.2
        active = 1
    }
}
CF
"$FULCRUM" run --config /etc/lvs.cf --control /run/f.sock --keep-forwarding 2>/run/f1.log &
pid=$!
waitfor 20 test -S /run/f.sock || { cat /run/f1.log; exit 1; }
waitfor 10 get client http://10.0.0.100/ || { echo "no answer"; exit 1; }
for i in $(seq 10); do get client http://10.0.0.100/ >/dev/null; done

# An upgrade: the old director leaves forwarding in place...
kill -TERM $pid; wait $pid; echo "exit $?"
echo "=== left"; ipvsadm -S -n; cat /run/f.kernel; ip -4 addr show dev dc | grep -c 10.0.0.100
echo "=== served meanwhile"; get client http://10.0.0.100/
sleep 3; before=$(ipvsadm -L -n --stats --exact | awk '/^TCP/ {print $3}')
# ...and the new one adopts it, touching nothing.
"$FULCRUM" run --config /etc/lvs.cf --control /run/f.sock 2>/run/f2.log &
pid=$!
waitfor 20 test -S /run/f.sock || { cat /run/f2.log; exit 1; }
sleep 3; after=$(ipvsadm -L -n --stats --exact | awk '/^TCP/ {print $3}')
echo "=== adopted"; echo "conns before $before, after $after"; grep -c "adopted" /run/f2.log
echo "=== header"; "$FULCRUM" adm --control /run/f.sock -L -n | head -1
for try in 1 2 3; do
  [ "$(ipvsadm -L -n)" = "$("$FULCRUM" adm --control /run/f.sock -L -n)" ] && { echo same; break; }
done

# Behind Fulcrum's back: noticed, reported, and undone by a reload.
ipvsadm -e -t 10.0.0.100:80 -r 192.168.1.2:80 -m -w 7
ipvsadm -a -t 10.0.0.100:80 -r 192.168.1.9:80 -m
waitfor 12 says /run/f.sock "kernel table: 2 difference"
echo "=== drift"; "$FULCRUM" status --control /run/f.sock | grep "kernel table"
grep "behind Fulcrum's back" /run/f2.log
"$FULCRUM" reload --control /run/f.sock >/dev/null 2>&1
echo "=== reloaded"; ipvsadm -S -n

# A reload the kernel half refuses: no `sed` scheduler in this kernel.
rm -f "$(modinfo -n ip_vs_sed)"
cat >> /etc/lvs.cf <<'CF'
virtual a {
    active = 1
    address = 10.0.0.100 dc:1
    port = 81
    scheduler = sed
    checktype = off
    server rs1 {
        address = 192.168.1.1
        active = 1
    }
}
virtual b {
    active = 1
    address = 10.0.0.100 dc:1
    port = 82
    scheduler = rr
    checktype = off
    server rs1 {
        address = 192.168.1.1
        active = 1
    }
}
CF
echo "=== half"; "$FULCRUM" reload --control /run/f.sock 2>&1; echo "exit $?"
ipvsadm -S -n
kill -TERM $pid; wait $pid
echo "=== stopped"; ipvsadm -S -n; cat /run/f.kernel; ip -4 addr show dev dc | grep -c 10.0.0.100 || true
