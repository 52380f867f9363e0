# Connection sync across the two kinds of director, both ways: kernel IPVS
# sends and Fulcrum's XDP plane receives; then Fulcrum's XDP plane sends
# and kernel IPVS receives. A LAN (bridge br0) holds a client, two real
# servers reached by direct routing that echo what they get (busybox nc),
# director d1 on kernel IPVS running the kernel's master sync daemon, and
# director d2 on the XDP plane with Fulcrum's own receiver
# (`syncd_role = backup`). d2 holds the VIP on a dummy interface of its
# own and answers no ARP for it, so the client's traffic goes through d1
# only. A long-lived TCP connection through d1 must appear in d2's flow
# table (`fulcrum adm -L -n -c`), bound to the same real server.
modprobe dummy
bridge br0
ns client; plug client br0 10.1.0.10/24
for i in 1 2; do
  ns rs$i; plug rs$i br0 10.1.0.$i/24
  ip netns exec rs$i "$FULCRUM" realserver-setup --mode direct --vip 10.1.0.100 --state /run/rs$i.state >/dev/null
  ip netns exec rs$i nc -ll -p 7 -e /bin/cat &
done
for i in 1 2; do ns d$i; plug d$i br0 10.1.0.25$i/24; done
ip -n d2 link add eth1 type dummy; ip -n d2 link set eth1 up
ip netns exec d2 sysctl -qw net.ipv4.conf.all.arp_ignore=1

conf() { # PLANE ROLE DEVICE
cat <<CF
primary = 10.1.0.25$4
network = direct
dataplane = $1
syncdaemon = 1
syncd_role = $2
syncd_iface = eth0
syncd_id = 9
virtual echo {
    active = 1
    address = 10.1.0.100 $3
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
}
conf ipvs master eth0:1 1 > /run/d1.cf
conf xdp backup eth1:1 2 > /run/d2.cf
for i in 1 2; do
  ip netns exec d$i "$FULCRUM" run --config /run/d$i.cf --control /run/d$i.sock 2>/run/d$i.log &
  echo $! > /run/d$i.pid
done
for i in 1 2; do waitfor 20 test -S /run/d$i.sock || { echo "d$i did not start"; cat /run/d$i.log; exit 1; }; done
waitfor 10 says /run/d1.sock 'connection sync: master'
waitfor 10 says /run/d2.sock 'connection sync: backup'
waitfor 20 has_addr d1 10.1.0.100 || { echo "d1 never took the VIP"; cat /run/d1.log; exit 1; }

# Long-lived connections: a line every 0.2 s for 8 s, echoed back.
clients=""
for c in 1 2 3 4; do
  (for i in $(seq 40); do echo "line $i"; sleep 0.2; done) | ip netns exec client nc 10.1.0.100 7 > /run/echo$c.out &
  clients="$clients $!"
done
sleep 4
echo "=== d1 conns"; ip netns exec d1 ipvsadm -L -n -c | grep '10.1.0.10:' | awk '{print $3, $4, $6}' | sort
echo "=== d2 conns"; "$FULCRUM" adm --control /run/d2.sock -L -n -c | grep '10.1.0.10:' | awk '{print $3, $4, $6}' | sort
echo "=== d2 status"; "$FULCRUM" status --control /run/d2.sock | grep 'connection sync'
for c in $clients; do wait "$c"; done
echo "=== echoed"; cat /run/echo*.out | wc -l

# The other way: d2 on the XDP plane holds the VIP on eth0 and sends
# (`syncd_role = master`); d1 on kernel IPVS receives with the kernel's
# backup daemon and holds the VIP where no ARP reaches it. The program's
# direct routing sends frames back out of eth0 (XDP_TX), which the bridge's
# port takes only while it runs an XDP program ($PASS); the client computes
# its checksums in full.
for i in 1 2; do kill "$(cat /run/d$i.pid)"; done
for i in 1 2; do waitfor 10 sh -c "! kill -0 $(cat /run/d$i.pid)"; done
ip -n d1 link add eth1 type dummy; ip -n d1 link set eth1 up
ip netns exec d1 sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip link set v-d2 xdpdrv obj "$PASS" sec xdp
ip netns exec client "$ETHTOOL" -K eth0 tx off >/dev/null
conf ipvs backup eth1:1 1 > /run/d1.cf
conf xdp master eth0:1 2 > /run/d2.cf
for i in 1 2; do
  rm -f /run/d$i.sock
  ip netns exec d$i "$FULCRUM" run --config /run/d$i.cf --control /run/d$i.sock 2>/run/d$i.log &
  echo $! > /run/d$i.pid
done
for i in 1 2; do waitfor 20 test -S /run/d$i.sock || { echo "d$i did not start"; cat /run/d$i.log; exit 1; }; done
waitfor 10 says /run/d2.sock 'connection sync: master'
waitfor 10 says /run/d1.sock 'connection sync: backup'
waitfor 20 has_addr d2 10.1.0.100 || { echo "d2 never took the VIP"; cat /run/d2.log; exit 1; }
# Longer-lived than the first ones (16 s): the emulated machine is slow to
# list, and both listings must see the connections open.
clients=""
for c in 1 2 3 4; do
  (for i in $(seq 80); do echo "line $i"; sleep 0.2; done) | ip netns exec client nc 10.1.0.100 7 > /run/back$c.out &
  clients="$clients $!"
done
sleep 4
echo "=== d2 flows"; "$FULCRUM" adm --control /run/d2.sock -L -n -c | grep '10.1.0.10:' | awk '{print $3, $4, $6}' | sort
# (d1's own connections of the first part linger, closed: left out.)
echo "=== d1 synced"; ip netns exec d1 ipvsadm -L -n -c | grep '10.1.0.10:' | grep -v FIN_WAIT | awk '{print $3, $4, $6}' | sort
echo "=== d1 daemon"; ip netns exec d1 ipvsadm -L --daemon
echo "=== d2 sender"; "$FULCRUM" status --control /run/d2.sock | grep 'connection sync'
for c in $clients; do wait "$c"; done
echo "=== echoed back"; cat /run/back*.out | wc -l
echo "=== end"
