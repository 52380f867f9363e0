# GUE tunnelling against real peers, on the VM's kernel (Debian 6.1, with
# IPVS, fou and ipip). A router (namespace rt) joins the client's subnet,
# the director's (the root namespace, one-armed on veth dl, the VIP routed
# to it) and two real servers' subnets; the real servers answer the client
# through the router, as with LVS-TUN. rs1 takes GUE with the kernel's own
# fou (`ip fou add port 6080 gue`, and ipip's tunl0), rs2 with Fulcrum's
# decapsulation program (`realserver-setup --decap xdp --gue-port 6080`).
# The same lvs.cf (`tunnel_type = gue`, `tunnel_port = 6080`) runs first on
# kernel IPVS, then on Fulcrum's XDP program: each real server answers
# through each, and sees the client's own address.
# The director's program sends the tunnelled packets back out of dl
# (XDP_TX): the router's end of it runs a program that passes everything
# ($PASS), without which a veth drops such frames. The senders on veths
# compute their checksums in full ($ETHTOOL).
modprobe ipip; modprobe fou
ns rt
ip netns exec rt sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ns client
ip link add eth9 netns rt type veth peer name eth0 netns client
ip -n rt addr add 10.3.0.254/24 dev eth9; ip -n rt link set eth9 up
ip -n client addr add 10.3.0.10/24 dev eth0; ip -n client link set eth0 up
ip -n client route add default via 10.3.0.254
ip link add dl type veth peer name eth0 netns rt
ip addr add 10.9.0.1/24 dev dl; ip link set dl up
ip route add default via 10.9.0.2
ip -n rt addr add 10.9.0.2/24 dev eth0; ip -n rt link set eth0 up
ip -n rt route add 10.1.0.101/32 via 10.9.0.1
for i in 1 2; do
  ns rs$i
  ip link add eth$i netns rt type veth peer name eth0 netns rs$i
  ip -n rt addr add 10.2.$i.254/24 dev eth$i; ip -n rt link set eth$i up
  ip -n rs$i addr add 10.2.$i.3/24 dev eth0; ip -n rs$i link set eth0 up
  ip -n rs$i route add default via 10.2.$i.254
  ip netns exec rs$i "$ETHTOOL" -K eth0 tx off >/dev/null
  web rs$i rs$i
done
for d in eth0 eth1 eth2 eth9; do ip netns exec rt sysctl -qw net.ipv4.conf.$d.rp_filter=0; done
ip netns exec client "$ETHTOOL" -K eth0 tx off >/dev/null
ip -n rt link set eth0 xdpdrv obj "$PASS" sec xdp
# rs1: the kernel's ipip (set up by realserver-setup) and fou for GUE.
ip netns exec rs1 "$FULCRUM" realserver-setup --mode tunnel --vip 10.1.0.101 --state /run/rs1.state >/dev/null
ip -n rs1 fou add port 6080 gue
# rs2: Fulcrum's decapsulation program, GUE on port 6080.
echo "=== rs2 setup"
ip netns exec rs2 "$FULCRUM" realserver-setup --mode tunnel --decap xdp --gue-port 6080 --interface eth0 --vip 10.1.0.101 --state /run/rs2.state 2>&1 | grep attach

conf() {
cat > /etc/lvs.cf <<CF
primary = 10.9.0.1
network = tunnel
dataplane = $1
virtual far {
    active = 1
    address = 10.1.0.101 dl:1
    port = 80
    scheduler = rr
    checktype = connect
    tunnel_type = gue
    tunnel_port = 6080
    server rs1 {
        address = 10.2.1.3
        active = 1
    }
    server rs2 {
        address = 10.2.2.3
        active = 1
    }
}
CF
}

for plane in ipvs xdp; do
  conf $plane
  director /etc/lvs.cf /run/$plane.sock
  waitfor 15 get client http://10.1.0.101/ || { echo "no answer on the VIP ($plane)"; cat /run/$plane.sock.log; ipvsadm -L -n; }
  echo "=== $plane tun-info"; "$FULCRUM" adm --control /run/$plane.sock -L -n --tun-info
  [ $plane = ipvs ] && { echo "=== ipvsadm tun-info"; ipvsadm -L -n --tun-info; }
  echo "=== $plane"
  for i in $(seq 20); do get client http://10.1.0.101/cgi-bin/who; done | sort | uniq -c | sed 's/^ *//'
  kill "$(cat /run/$plane.sock.pid)"
  waitfor 10 sh -c "! ipvsadm -L -n | grep -q 10.1.0.101" || true
  sleep 1
done
echo "=== decap counted"
ip -n rs2 -d link show eth0 | grep -c "prog/xdp"
echo "=== end"
