// SPDX-License-Identifier: GPL-2.0
/* A program that passes every frame: on a veth, frames sent back out with
 * XDP_TX by its peer's program reach it only when it runs XDP itself (GRO
 * alone is not enough, as measured on 6.1 and 6.18). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
