# Two directors on kernel IPVS failing over, with the kernel's connection
# sync. A LAN (bridge br0) holds both directors (namespaces d1, d2), a
# client and two real servers reached by direct routing that echo what
# they get (busybox nc). Both directors keep the table in their kernels;
# the active one holds the VIP and runs the master sync daemon, the other
# the backup one (`syncd_role = auto`). A long-lived TCP connection through
# the VIP must keep working after the active director dies (kill -9 and
# its link down), because the backup's kernel got the connection by sync.
bridge br0
ns client; plug client br0 10.1.0.10/24
for i in 1 2; do
  ns rs$i; plug rs$i br0 10.1.0.$i/24
  ip netns exec rs$i "$FULCRUM" realserver-setup --mode direct --vip 10.1.0.100 --state /run/rs$i.state >/dev/null
  ip netns exec rs$i nc -ll -p 7 -e /bin/cat &
done
for i in 1 2; do ns d$i; plug d$i br0 10.1.0.25$i/24; done

cat > /etc/lvs.cf <<'CF'
serial_no = 1
primary = 10.1.0.251
backup = 10.1.0.252
backup_active = 1
heartbeat = 1
keepalive = 0.5
deadtime = 2
network = direct
syncdaemon = 1
syncd_iface = eth0
syncd_id = 9
virtual echo {
    active = 1
    address = 10.1.0.100 eth0:1
    port = 7
    scheduler = rr
    checktype = connect
    server rs1 {
        address = 10.1.0.1
        active = 1
    }
    server rs2 {
        address = 10.1.0.2
        active = 1
    }
}
CF
for i in 1 2; do
  ip netns exec d$i "$FULCRUM" run --config /etc/lvs.cf --control /run/d$i.sock 2>/run/d$i.log &
  echo $! > /run/d$i.pid
done
for i in 1 2; do waitfor 20 test -S /run/d$i.sock || { echo "d$i did not start"; cat /run/d$i.log; exit 1; }; done
waitfor 20 has_addr d1 10.1.0.100 || { echo "d1 never took the VIP"; cat /run/d1.log; exit 1; }
waitfor 10 says /run/d2.sock 'connection sync: backup'
echo "=== tables"; ip netns exec d1 ipvsadm -S -n; echo "--"; ip netns exec d2 ipvsadm -S -n
echo "=== daemons"; ip netns exec d1 ipvsadm -L --daemon; echo "--"; ip netns exec d2 ipvsadm -L --daemon
echo "=== status d1"; "$FULCRUM" status --control /run/d1.sock | grep -E 'connection sync|failover|state'

# The long-lived connection: a line every 0.2 s for 16 s, echoed back.
(for i in $(seq 80); do echo "line $i"; sleep 0.2; done; sleep 6) | ip netns exec client nc 10.1.0.100 7 > /run/echo.out &
client=$!
sleep 3
echo "=== synced"; ip netns exec d2 ipvsadm -L -n -c | grep -c '10.1.0.10:.*10.1.0.100:7' || true
echo "=== before"; wc -l < /run/echo.out
kill -9 "$(cat /run/d1.pid)"; ip -n d1 link set eth0 down
waitfor 10 has_addr d2 10.1.0.100 && echo "=== d2 took the VIP"
waitfor 10 says /run/d2.sock 'connection sync: master' && echo "=== d2 sends"
wait $client
echo "=== after"; wc -l < /run/echo.out; tail -1 /run/echo.out
echo "=== d2 conns"; ip netns exec d2 ipvsadm -L -n --stats | grep -A2 'TCP  10.1.0.100:7'
echo "=== log d2"; cat /run/d2.log
