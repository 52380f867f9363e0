// SPDX-License-Identifier: GPL-2.0
/* bench/xdp.sh: drop everything (the sink, and the generator's ceiling). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
