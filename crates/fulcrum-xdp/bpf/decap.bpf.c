// SPDX-License-Identifier: GPL-2.0
/*
 * Fulcrum's decapsulation program, for tunnelled real servers whose kernel
 * has no ipip module: IP-in-IP (IPv4 protocol 4) and IPv6-in-IPv6 (next
 * header 41) packets lose their outer header here and go on to the kernel
 * as the client's own packet, for the virtual address configured on `lo`
 * (`fulcrum realserver-setup --mode tunnel --decap xdp`). Everything else
 * passes untouched. Counted in `decap_stats`: [decapsulated, passed].
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
	int strip;
	__be16 inner_type;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		/* Outer IPv4 without options, not a fragment, carrying IPv4. */
		if ((void *)(ip + 40) > end)
			return count(1);
		if (ip[0] != 0x45 || ip[9] != IPPROTO_IPIP || (((ip[6] << 8) | ip[7]) & 0x3fff))
			return count(1);
		if ((ip[20] >> 4) != 4)
			return count(1);
		strip = 20;
		inner_type = bpf_htons(ETH_P_IP);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip + 80) > end)
			return count(1);
		if (ip[6] != IPPROTO_IPV6 || (ip[40] >> 4) != 6)
			return count(1);
		strip = 40;
		inner_type = bpf_htons(ETH_P_IPV6);
	} else {
		return count(1);
	}
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
