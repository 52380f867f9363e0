# Direct routing, tunnelling and a fwmark service on kernel IPVS. One LAN
# (bridge br0): the director (root namespace, 10.1.0.254), a client, two
# real servers reached by direct routing, and a router to another subnet
# where a tunnelled real server lives. The real servers are set up by
# `fulcrum realserver-setup`. A fwmark (set by tc, $TC, on the director) gathers
# ports 80 and 443 of a third VIP into one persistent service.
modprobe ipip; modprobe sch_ingress; modprobe cls_flower; modprobe act_skbedit
bridge br0 10.1.0.254/24
ns client; plug client br0 10.1.0.10/24
for i in 1 2; do
  ns rs$i; plug rs$i br0 10.1.0.$i/24
  ip netns exec rs$i "$FULCRUM" realserver-setup --mode direct --vip 10.1.0.100 --vip 10.1.0.102 --state /run/rs$i.state >/dev/null
  web rs$i rs$i
  ip netns exec rs$i httpd -f -p 443 -h /srv/rs$i &
done
ns rt; plug rt br0 10.1.0.253/24
ip netns exec rt sysctl -qw net.ipv4.ip_forward=1
ns rs3
ip link add eth1 netns rt type veth peer name eth0 netns rs3
ip -n rt addr add 10.2.0.254/24 dev eth1; ip -n rt link set eth1 up
ip -n rs3 addr add 10.2.0.3/24 dev eth0; ip -n rs3 link set eth0 up
ip -n rs3 route add default via 10.2.0.254
ip netns exec rs3 "$FULCRUM" realserver-setup --mode tunnel --vip 10.1.0.101 --state /run/rs3.state >/dev/null
web rs3 rs3
ip route add 10.2.0.0/24 via 10.1.0.253
echo "=== rs check"; ip netns exec rs1 "$FULCRUM" realserver-setup --mode direct --vip 10.1.0.100 --vip 10.1.0.102 --state /run/rs1.state --check 2>&1; echo "exit $?"

"$TC" qdisc add dev br0 ingress
for p in 80 443; do
  "$TC" filter add dev br0 parent ffff: protocol ip flower ip_proto tcp dst_ip 10.1.0.102 dst_port $p action skbedit mark 5
done

cat > /etc/lvs.cf <<'CF'
primary = 10.1.0.254
network = direct
virtual web {
    active = 1
    address = 10.1.0.100 br0:1
    port = 80
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
virtual far {
    active = 1
    address = 10.1.0.101 br0:2
    port = 80
    scheduler = rr
    checktype = connect
    server rs3 {
        address = 10.2.0.3
        active = 1
        forwarding = tunnel
    }
}
virtual marked {
    active = 1
    address = 10.1.0.102 br0:3
    fwmark = 5
    port = 80
    persistent = 60
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
director /etc/lvs.cf /run/f.sock
waitfor 10 get client http://10.1.0.100/ || { echo "no answer on the VIP"; cat /run/f.sock.log; ipvsadm -L -n; exit 1; }
echo "=== table"; ipvsadm -S -n
ipvsadm -Z
echo "=== direct"
for i in $(seq 20); do get client http://10.1.0.100/cgi-bin/who; done | sort | uniq -c | sed 's/^ *//'
echo "=== tunnel"
for i in $(seq 6); do get client http://10.1.0.101/cgi-bin/who; done | sort | uniq -c | sed 's/^ *//'
echo "=== marked"
for i in $(seq 5); do
  get client http://10.1.0.102/cgi-bin/who; get client http://10.1.0.102:443/cgi-bin/who
done | sort | uniq -c | sed 's/^ *//'
sleep 3  # the kernel's estimator sums its counters every 2 s
echo "=== stats"; ipvsadm -L -n --stats --exact
echo "=== log"; cat /run/f.sock.log
