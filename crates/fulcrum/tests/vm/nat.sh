# The seed's five-node NAT cluster on kernel IPVS: a client, a director
# (the VM's root namespace), three real servers behind it whose default
# route is the director. The lvs.cf is Piranha's, without `dataplane`:
# `auto` takes the kernel's IPVS. Then nanny: a real server whose web
# server dies leaves the kernel table, and returns when it comes back.
# rs2 and rs3 also serve FTP (vsftpd), reached through NAT on the same VIP: the
# client has no route to the real servers, so passive FTP works only when
# the kernel's ip_vs_ftp rewrites the server's 227 reply.
ns client
ip link add dc type veth peer name eth0 netns client
ip addr add 10.0.0.1/24 dev dc; ip link set dc up
ip -n client addr add 10.0.0.2/24 dev eth0; ip -n client link set eth0 up
bridge br1 192.168.1.254/24
for i in 1 2 3; do ns rs$i; plug rs$i br1 192.168.1.$i/24 192.168.1.254; web rs$i rs$i; done
echo "ftp:x:101:101:ftp:/srv/ftp:/bin/false" >> /etc/passwd
mkdir -p /srv/ftp /var/empty; echo "hello over ftp" > /srv/ftp/file.txt
cat > /etc/vsftpd.conf <<'CF'
listen=YES
listen_ipv6=NO
background=NO
anonymous_enable=YES
local_enable=NO
anon_root=/srv/ftp
ftp_username=ftp
no_anon_password=YES
secure_chroot_dir=/var/empty
seccomp_sandbox=NO
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30010
tcp_wrappers=NO
CF
ip netns exec rs2 "$VSFTPD" /etc/vsftpd.conf &
ip netns exec rs3 "$VSFTPD" /etc/vsftpd.conf &

cat > /etc/lvs.cf <<'CF'
serial_no = 1
primary = 10.0.0.1
service = lvs
network = nat
virtual web {
    active = 1
    address = 10.0.0.100 dc:1
    vip_nmask = 255.255.255.0
    port = 80
    send = "GET / HTTP/1.0\r\n\r\n"
    expect = "HTTP"
    scheduler = wrr
    protocol = tcp
    check_interval = 1
    timeout = 2
    reentry = 2
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
virtual ftp {
    active = 1
    address = 10.0.0.100 dc:1
    port = ftp
    scheduler = rr
    server rs2 {
        address = 192.168.1.2
        active = 1
    }
    server rs3 {
        address = 192.168.1.3
        active = 1
    }
}
CF
director /etc/lvs.cf /run/f.sock
waitfor 10 get client http://10.0.0.100/ || { echo "no answer on the VIP"; cat /run/f.sock.log; ipvsadm -L -n; exit 1; }
echo "=== status"; "$FULCRUM" status --control /run/f.sock | head -1
echo "=== table"; ipvsadm -L -n
echo "=== adm"; "$FULCRUM" adm --control /run/f.sock -L -n
echo "=== ftp"
# Four sessions, alternating between two real servers (rr): each data
# connection must reach the real server of its own control connection.
for i in 1 2 3 4; do
  ip netns exec client timeout 10 ftpget -u anonymous -p x 10.0.0.100 - file.txt 2>&1; echo "exit $?"
done
ipvsadm -L -n -c | grep '10.0.0.100:300[01][0-9] ' | awk '{print $6}' | sed 's/:.*//' | sort | uniq -c | sed 's/^ *//'
test -d /sys/module/ip_vs_ftp && echo "ip_vs_ftp loaded"
# The kernel sums its per-CPU counters every 2 s: zeroing before the sum
# of the connections above lets one of them show up after the zero.
sleep 3
ipvsadm -Z
echo "=== spread"
for i in $(seq 400); do get client http://10.0.0.100/cgi-bin/who; done | sort | uniq -c | sed 's/^ *//'
echo "=== stats"; ipvsadm -L -n --stats
sleep 3  # the kernel's estimator sums its counters every 2 s
echo "=== status counts"; "$FULCRUM" status --control /run/f.sock | grep "tcp 10.0.0.100:80"
# fulcrum adm answers from the kernel: the same bytes as the real ipvsadm.
adm() { "$FULCRUM" adm --control /run/f.sock "$@"; }
noexp() { sed 's/^\(...\) [0-9][0-9]:[0-9][0-9]/\1 --:--/'; }
echo "=== oracle"
"$FULCRUM" adm --control /run/f.sock --start-daemon master --mcast-interface dc --syncid 7
for opts in "-L -n" "-L -n --stats --exact" "-L -n --rate" "-L -n --thresholds" "-L -n --persistent-conn" \
            "-S -n" "-L -n -t 10.0.0.100:80" "-L --timeout" "-L --daemon" "-L -n -t 10.0.0.100:81" "-L"; do
  # The kernel's estimator moves counters and rates every 2 s: a pair of
  # reads that straddles a tick is read again (up to 5 times).
  for try in 1 2 3 4 5; do
    a=$(ipvsadm $opts 2>&1; echo "exit $?"); b=$(adm $opts 2>&1; echo "exit $?")
    [ "$a" = "$b" ] && break
  done
  [ "$a" = "$b" ] && echo "same: $opts" || { echo "DIFFERENT: $opts"; echo "$a"; echo "---"; echo "$b"; }
done
for try in 1 2 3 4 5; do
  a=$(ipvsadm -L -n -c | noexp); b=$(adm -L -n -c | noexp)
  [ "$a" = "$b" ] && break
done
[ "$a" = "$b" ] && echo "same: -L -n -c ($(echo "$a" | wc -l) lines)" || { echo "DIFFERENT: -c"; echo "$a"; echo "---"; echo "$b"; }
adm --start-daemon master --mcast-interface dc 2>&1; echo "exit $?"
adm --stop-daemon master; adm --stop-daemon master 2>&1; echo "exit $?"
echo "=== daemons after"; ipvsadm -L --daemon
adm -Z; echo "=== zeroed"; ipvsadm -L -n --stats | tail -n +4 | awk '{print $3}'
kill "$(cat /srv/rs2.pid)"
waitfor 15 sh -c '! ipvsadm -L -n | grep -q 192.168.1.2:80' && echo "=== rs2 out" && ipvsadm -L -n
web rs2 rs2
waitfor 20 sh -c 'ipvsadm -L -n | grep -q 192.168.1.2:80' && echo "=== rs2 back" && ipvsadm -L -n
echo "=== log"; cat /run/f.sock.log
