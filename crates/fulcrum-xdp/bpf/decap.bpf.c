// SPDX-License-Identifier: GPL-2.0
/*
 * Fulcrum's decapsulation program, for tunnelled real servers whose kernel
 * has no ipip (or fou) module: IP-in-IP (IPv4 protocol 4) and IPv6-in-IPv6
 * (next header 41) packets — and, when a GUE port is set, GUE packets (UDP
 * to that port; GUE version 0 carrying IPv4 or IPv6, or version 1, the
 * packet straight after UDP) — lose their outer headers here and go on to
 * the kernel as the client's own packet, for the virtual address configured
 * on `lo` (`fulcrum realserver-setup --mode tunnel --decap xdp [--tun-type
 * gue --tun-port N]`). GUE control messages, options the program does not
 * know and everything else pass untouched. The outer UDP checksum is not
 * checked (IPVS sends none by default; the inner packet carries its own).
 * Counted in `decap_stats`: [decapsulated, passed].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

/* GUE's UDP port (network order), 0 for none: set when loaded. */
const volatile __be16 gue_port = 0;

static __always_inline int count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&decap_stats, &k);
	if (n)
		*n += 1;
	return XDP_PASS;
}

SEC("xdp")
int fulcrum_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(1);
	__u8 *ip = (void *)(eth + 1);
	__u32 strip;
	__u8 want; /* the inner IP version the outer headers announce, 0 any */
	__u8 *udp;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		/* Outer IPv4 without options, not a fragment. */
		if ((void *)(ip + 20) > end)
			return count(1);
		if (ip[0] != 0x45 || (((ip[6] << 8) | ip[7]) & 0x3fff))
			return count(1);
		if (ip[9] == IPPROTO_IPIP) {
			strip = 20;
			want = 4;
			goto inner;
		}
		if (ip[9] != IPPROTO_UDP || !gue_port)
			return count(1);
		udp = ip + 20;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		/* Outer IPv6 without extension headers. */
		if ((void *)(ip + 40) > end)
			return count(1);
		if ((ip[0] >> 4) != 6)
			return count(1);
		if (ip[6] == IPPROTO_IPV6) {
			strip = 40;
			want = 6;
			goto inner;
		}
		if (ip[6] != IPPROTO_UDP || !gue_port)
			return count(1);
		udp = ip + 40;
	} else {
		return count(1);
	}
	/* GUE: UDP to its port, then version 0 (a 4-byte header and hlen
	 * words of options, naming the inner protocol; not a control message)
	 * or version 1 (no header: the inner packet's version bits, 01, are
	 * GUE's). */
	if ((void *)(udp + 12) > end)
		return count(1);
	__be16 dport;
	__builtin_memcpy(&dport, udp + 2, 2);
	if (dport != gue_port)
		return count(1);
	__u8 *gue = udp + 8;
	strip = (__u32)(gue - ip);
	if ((gue[0] >> 6) == 1) {
		want = 0;
	} else if ((gue[0] >> 6) == 0 && !(gue[0] & 0x20) &&
		   (gue[1] == IPPROTO_IPIP || gue[1] == IPPROTO_IPV6)) {
		want = gue[1] == IPPROTO_IPIP ? 4 : 6;
		strip += 4 + (gue[0] & 0x1f) * 4;
	} else {
		return count(1);
	}
inner:
	/* The inner packet: a whole IP header of the version announced. */
	if (strip > 40 + 8 + 4 + 31 * 4)
		return count(1);
	/* (The barrier and the mask, a no-op, keep the bound in the
	 * verifier's sight: the compiler would drop the mask.) */
	barrier_var(strip);
	strip &= 0xff;
	__u8 *in = ip + strip;
	if ((void *)(in + 20) > end)
		return count(1);
	__u8 ver = in[0] >> 4;
	if ((ver != 4 && ver != 6) || (want && ver != want))
		return count(1);
	if (ver == 6 && (void *)(in + 40) > end)
		return count(1);
	__be16 inner_type = ver == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
	struct ethhdr copy;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, strip))
		return count(1);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth, &copy, sizeof(copy));
	eth->h_proto = inner_type;
	return count(0);
}

char _license[] SEC("license") = "GPL";
