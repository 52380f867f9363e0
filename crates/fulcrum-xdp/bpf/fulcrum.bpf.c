// SPDX-License-Identifier: GPL-2.0
/*
 * Fulcrum's XDP data plane: the packet classifier.
 *
 * Every frame is parsed (Ethernet, one 802.1Q tag, IPv4 with options,
 * IPv6 without extension headers, TCP/UDP/SCTP ports) and looked up in the
 * `services` map that the controller publishes the table into. A packet
 * for a virtual service is counted against that service (`svc_stats`,
 * per CPU); everything else goes on to the kernel untouched, counted by
 * why (`exceptions`). This stage forwards nothing itself: every verdict is
 * XDP_PASS. Bounds are checked before every read, so no frame — short,
 * truncated, lying about its lengths — is read past its end.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Why a packet was not a virtual service's (indexes of `exceptions`). */
enum exception {
	EXC_NOT_IP = 0,     /* not IPv4 or IPv6 (ARP, LLDP, ...) */
	EXC_MALFORMED = 1,  /* shorter than its headers say, bad IHL */
	EXC_FRAGMENT = 2,   /* an IPv4 fragment: no ports to classify by */
	EXC_IPV6_EXT = 3,   /* IPv6 with extension headers */
	EXC_OTHER_L4 = 4,   /* not TCP, UDP or SCTP (ICMP, ...) */
	EXC_NO_SERVICE = 5, /* TCP/UDP/SCTP, but no virtual service there */
	EXC_MAX = 6,
};

/* The key of `services`: 20 bytes, as fulcrum-xdp writes it. */
struct svc_key {
	__u8 family;  /* 4 or 6 */
	__u8 proto;   /* IPPROTO_TCP, _UDP, _SCTP */
	__be16 port;  /* network order */
	__u8 addr[16]; /* IPv4 in the first four bytes, the rest zero */
};

/* Per-service counters: packets and bytes (IP layer) in. */
struct svc_counters {
	__u64 packets;
	__u64 bytes;
};

#define MAX_SERVICES 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, __u32); /* the service's index in svc_stats */
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct svc_counters);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EXC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} exceptions SEC(".maps");

#define NEXTHDR_ICMPV6 58
#define NEXTHDR_NONE 59

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int count(enum exception why)
{
	__u32 k = why;
	__u64 *n = bpf_map_lookup_elem(&exceptions, &k);
	if (n)
		*n += 1;
	return XDP_PASS;
}

SEC("xdp")
int fulcrum_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct svc_key key = {};
	__u8 *l4;
	__u8 proto;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(EXC_MALFORMED);
	__be16 type = eth->h_proto;
	void *l3 = eth + 1;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *v = l3;
		if ((void *)(v + 1) > end)
			return count(EXC_MALFORMED);
		type = v->proto;
		l3 = v + 1;
	}

	if (type == bpf_htons(ETH_P_IP)) {
		__u8 *ip = l3;
		if ((void *)(ip + 20) > end)
			return count(EXC_MALFORMED);
		__u8 ihl = (ip[0] & 0x0f) * 4;
		if ((ip[0] >> 4) != 4 || ihl < 20)
			return count(EXC_MALFORMED);
		/* More fragments, or an offset: not the whole datagram. */
		if (((ip[6] << 8) | ip[7]) & 0x3fff)
			return count(EXC_FRAGMENT);
		proto = ip[9];
		key.family = 4;
		__builtin_memcpy(key.addr, ip + 16, 4);
		l4 = ip + ihl;
		if ((void *)l4 > end)
			return count(EXC_MALFORMED);
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = l3;
		if ((void *)(ip6 + 40) > end)
			return count(EXC_MALFORMED);
		if ((ip6[0] >> 4) != 6)
			return count(EXC_MALFORMED);
		proto = ip6[6];
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP &&
		    proto != NEXTHDR_ICMPV6 && proto != NEXTHDR_NONE)
			return count(EXC_IPV6_EXT);
		key.family = 6;
		__builtin_memcpy(key.addr, ip6 + 24, 16);
		l4 = ip6 + 40;
	} else {
		return count(EXC_NOT_IP);
	}

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return count(EXC_OTHER_L4);
	/* The whole transport header must be there, as IPVS requires it;
	 * source and destination ports lead all three. */
	__u32 l4_len = proto == IPPROTO_TCP ? 20 : proto == IPPROTO_UDP ? 8 : 12;
	if ((void *)(l4 + l4_len) > end)
		return count(EXC_MALFORMED);
	key.proto = proto;
	__builtin_memcpy(&key.port, l4 + 2, 2);

	__u32 *id = bpf_map_lookup_elem(&services, &key);
	if (!id)
		return count(EXC_NO_SERVICE);
	__u32 i = *id;
	struct svc_counters *c = bpf_map_lookup_elem(&svc_stats, &i);
	if (c) {
		c->packets += 1;
		/* As IPVS counts: the IP packet, without the Ethernet header. */
		c->bytes += (__u64)(end - l3);
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
