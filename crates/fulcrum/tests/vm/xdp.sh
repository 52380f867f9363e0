# Fulcrum's XDP data plane on the VM's kernel (Debian 6.1, which also has
# IPVS): the five-node NAT cluster with `dataplane = xdp` — a client, the
# director (the VM's root namespace, the program on dc and dl), three real
# servers on a bridge behind it whose default route is the director. wrr
# 2000/1000/1000, the client's own address at the real servers, the
# program's listings; nanny taking a dead real server out.
# Redirects into a veth need GRO or a program on the receiving end, and the
# senders on veths must compute their checksums in full ($ETHTOOL).
ns client
ip link add dc type veth peer name eth0 netns client
ip addr add 10.0.0.1/24 dev dc; ip link set dc up
ip -n client addr add 10.0.0.2/24 dev eth0; ip -n client link set eth0 up
ns lan; ip -n lan link add br0 type bridge; ip -n lan link set br0 up
ip link add dl type veth peer name p-dir netns lan
ip -n lan link set p-dir master br0 up
ip addr add 192.168.1.253/24 dev dl; ip link set dl up
for i in 1 2 3; do
  ns rs$i
  ip link add p-rs$i netns lan type veth peer name eth0 netns rs$i
  ip -n lan link set p-rs$i master br0 up
  ip -n rs$i addr add 192.168.1.$i/24 dev eth0; ip -n rs$i link set eth0 up
  ip -n rs$i route add default via 192.168.1.254
  ip netns exec rs$i "$ETHTOOL" -K eth0 tx off >/dev/null
  web rs$i rs$i
done
ip netns exec client "$ETHTOOL" -K eth0 gro on tx off >/dev/null
ip netns exec lan "$ETHTOOL" -K p-dir gro on >/dev/null
cat > /etc/lvs.cf <<'CF'
primary = 10.0.0.1
network = nat
dataplane = xdp
nat_router = 192.168.1.254 dl:1
virtual web {
    active = 1
    address = 10.0.0.100 dc:1
    port = 80
    scheduler = wrr
    check_interval = 0.5
    server rs1 {
        address = 192.168.1.1
        active = 1
        weight = 2000
    }
    server rs2 {
        address = 192.168.1.2
        active = 1
        weight = 1000
    }
    server rs3 {
        address = 192.168.1.3
        active = 1
        weight = 1000
    }
}
CF
director /etc/lvs.cf /run/f.sock
waitfor 10 get client http://10.0.0.100/ || { echo "no answer on the VIP"; cat /run/f.sock.log; exit 1; }
# The spread begins with every real server in the table: on a slow emulated
# VM the first checks of rs2 and rs3 may pass after rs1's.
waitfor 30 sh -c "[ \$('$FULCRUM' adm --control /run/f.sock -L -n | grep -c '192.168.1.[123]:80') = 3 ]" || { echo "not all real servers in"; "$FULCRUM" adm --control /run/f.sock -L -n; }
echo "=== status"; "$FULCRUM" status --control /run/f.sock | head -1
echo "=== kernel"; uname -r
"$FULCRUM" adm --control /run/f.sock -Z
echo "=== spread"
for i in $(seq 400); do get client http://10.0.0.100/cgi-bin/who; done | sort | uniq -c | sed 's/^ *//'
# Every answered request was a connection the program scheduled (a client
# reusing the port of a TIME_WAIT flow once went to the old one's server).
echo "=== scheduled"; "$FULCRUM" adm --control /run/f.sock -L -n --stats | awk '$1 == "TCP" { print $3 }'
echo "=== downs"; grep -c "real server down" /run/f.sock.log || true
echo "=== table"; "$FULCRUM" adm --control /run/f.sock -L -n
echo "=== conns"; "$FULCRUM" adm --control /run/f.sock -L -n -c | grep -c TIME_WAIT
echo "=== nanny"
kill "$(cat /srv/rs2.pid)"
waitfor 15 sh -c "! '$FULCRUM' adm --control /run/f.sock -L -n | grep -q 192.168.1.2:80" && echo "rs2 out"
for i in $(seq 20); do get client http://10.0.0.100/; done | sort | uniq -c | sed 's/^ *//'
echo "=== stop"
kill "$(cat /run/f.sock.pid)"; waitfor 10 sh -c "! ip link show dc | grep -q xdp" && echo "detached"
echo "=== end"
