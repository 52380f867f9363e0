// SPDX-License-Identifier: GPL-2.0
/* bench/xdp.sh: the forwarding ceiling of the set-up — rewrite the MAC
 * addresses and redirect to the private veth, nothing else. OUT (ifindex),
 * SMAC and DMAC (byte lists) come from the command line (-D). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	const unsigned char d[ETH_ALEN] = {DMAC};
	const unsigned char s[ETH_ALEN] = {SMAC};
	__builtin_memcpy(eth->h_dest, d, ETH_ALEN);
	__builtin_memcpy(eth->h_source, s, ETH_ALEN);
	return bpf_redirect(OUT, 0);
}

char _license[] SEC("license") = "GPL";
