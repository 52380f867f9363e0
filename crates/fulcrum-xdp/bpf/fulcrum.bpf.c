// SPDX-License-Identifier: GPL-2.0
/*
 * Fulcrum's XDP data plane: an LVS director in XDP.
 *
 * Every frame is parsed (Ethernet, one 802.1Q tag, IPv4 with options,
 * IPv6 without extension headers, TCP/UDP/SCTP ports). A packet of a known
 * flow is forwarded to the flow's real server; the first packet of a new
 * connection to a virtual service is scheduled — by the service's IPVS
 * scheduler, over the destinations the controller published, with the
 * connection counts kept here — and becomes a flow. Replies of NAT flows
 * coming back from the real servers get the virtual address back.
 * Everything else goes on to the kernel untouched, counted by why
 * (`exceptions`).
 *
 * Who owns what (one writer per piece of state):
 *   the controller writes `services`, `svc_conf`, `dests`, `lookup`,
 *   `tcp_table`, `timeouts`, `clock`, `sync_conf`, and reads `sync_out`;
 *   this program writes `ftab4`, `ftab6`, `templates`, `dest_conns`, `svc_sched`
 *   (the controller seeds a service's scheduler state when the service's
 *   destination list changes, as the kernel's update hooks do), and the
 *   per-CPU counters.
 *
 * Forwarding: NAT rewrites the destination on the way in and the source on
 * the way back; direct routing changes only the MAC addresses. Where the
 * kernel's FIB knows the next hop and its neighbour, the frame is
 * redirected out of the right interface here; otherwise it goes to the
 * kernel already rewritten, and the kernel forwards it.
 *
 * Bounds are checked before every read, so no frame — short, truncated,
 * lying about its lengths — is read past its end.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Why a packet was not forwarded here (indexes of `exceptions`). */
enum exception {
	EXC_NOT_IP = 0,     /* not IPv4 or IPv6 (ARP, LLDP, ...) */
	EXC_MALFORMED = 1,  /* shorter than its headers say, bad IHL */
	EXC_FRAGMENT = 2,   /* an IPv4 fragment: no ports to classify by */
	EXC_IPV6_EXT = 3,   /* IPv6 with extension headers */
	EXC_OTHER_L4 = 4,   /* not TCP, UDP or SCTP (ICMP, ...) */
	EXC_NO_SERVICE = 5, /* TCP/UDP/SCTP, but no virtual service there */
	EXC_NOT_SYN = 6,    /* TCP without SYN (or with RST) and no flow */
	EXC_NO_DEST = 7,    /* the scheduler found no destination */
	EXC_TO_KERNEL = 8,  /* forwarded, but the kernel routes it (no neighbour yet) */
	EXC_TTL = 9,        /* TTL or hop limit ran out: the kernel answers */
	EXC_UNSUPPORTED = 10, /* a forwarding method this program leaves to the kernel */
	EXC_NO_NEIGH = 11,  /* DR, tunnelling or a NAT reply, next hop not resolved yet: dropped */
	EXC_TOO_BIG = 12,   /* too big for the tunnel: answered "fragmentation needed" (IPv4) or dropped */
	EXC_ICMP_FWD = 13,  /* an ICMP error of a flow, sent on to its real server or client */
	EXC_MAX = 14,
};

/* The key of `services`: 20 bytes, as fulcrum-xdp writes it. */
struct svc_key {
	__u8 family;  /* 4 or 6 */
	__u8 proto;   /* IPPROTO_TCP, _UDP, _SCTP */
	__be16 port;  /* network order */
	__u8 addr[16]; /* IPv4 in the first four bytes, the rest zero */
};

#define MAX_SERVICES 4096
#define MAX_DESTS 65536
#define MAX_SVC_DESTS 256
#define SVC_DEST_MASK (MAX_SVC_DESTS - 1)
#define HASH_TAB_BITS 8
#define HASH_TAB_SIZE (1 << HASH_TAB_BITS)
#define MAX_LOOKUP (1 << 20)

/* Scheduler numbers: fulcrum-core's SchedulerKind::ALL order. */
enum sched {
	S_RR = 0, S_WRR, S_LC, S_WLC, S_LBLC, S_LBLCR, S_DH, S_SH, S_SED,
	S_NQ, S_FO, S_OVF, S_MH, S_TWOS,
};

/* svc.flags */
#define SVC_SCHED1 0x1 /* sh/mh fallback */
#define SVC_SCHED2 0x2 /* sh/mh port */

/* A virtual service, as the controller publishes it. */
struct svc {
	__u8 sched;
	__u8 flags;
	__u16 ndests;
	__u32 wrr_mw;  /* wrr: the largest weight less (gcd - 1) */
	__u32 wrr_di;  /* wrr: the gcd of the weights */
	__u32 mh_m;    /* mh: the lookup table's size */
	__u32 persist; /* persistence timeout in seconds, 0: not persistent */
	__be16 port;   /* the service's port (0: all ports) */
	__u16 pad;
	__u8 netmask[16]; /* persistence granularity, as an address mask */
	__u32 lblc_expire; /* lblc/lblcr: cache expiration in seconds */
	__u32 pad2;
	__u32 slots[MAX_SVC_DESTS]; /* destination slots, in list order */
};

/* A service's scheduler state, kept by this program. */
struct svc_sched {
	__s64 wrr_cw;   /* wrr: current weight */
	__s32 wrr_cl;   /* wrr: index of the last pick, -1 none */
	__u32 rr_last;  /* rr: slot + 1 of the last pick, 0 none */
	__u64 rng;      /* twos: splitmix64 state */
};

/* Forwarding methods (fulcrum-core's Forwarding::conn_flags). */
#define FWD_MASQ 0
#define FWD_LOCAL 1
#define FWD_TUNNEL 2
#define FWD_ROUTE 3

/* A destination (real server), as the controller publishes it. */
struct dest {
	__u8 addr[16];
	__u8 family;
	__u8 fwd;
	__be16 port;       /* 0: keep the packet's port */
	__u32 weight;
	__u32 u_threshold;
	__u32 l_threshold;
	__u32 epoch;       /* bumped when the controller clears OVERLOAD */
	__u32 svc;
	__u8 tun_src[16];  /* tunnelling: the director's address towards it */
	__u8 flags;        /* DEST_F_* */
	__u8 tun_type;     /* TUN_* */
	__be16 tun_port;   /* GUE: the real server's UDP port */
	__u8 pad[4];
};

#define TUN_IPIP 0
#define TUN_GUE 1
/* GUE's outer UDP header and its own 4-byte header (version 0, no
 * options: the next protocol and nothing else), as IPVS sends it. */
#define GUE_LEN 12

#define DEST_F_RETIRED 0x1 /* deleted: forwards its flows, takes no new ones */

/* A destination's connections, counted here. */
struct dest_conns {
	__u32 active;
	__u32 inactive;
	__u32 persist;
	__u32 overload; /* epoch + 1 while overloaded, 0 otherwise */
};

/* Traffic counters of a service or a destination (per CPU). */
struct counters {
	__u64 conns;
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};

/* A flow: the client's packet as it arrives (the addresses 8-aligned:
 * IPv6 ones compare as two words). */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
} __attribute__((aligned(8)));

#define FLOW_INACTIVE 0x1

struct flow {
	__u64 expires; /* ns, on this program's clock */
	__u16 dest;    /* destination slot (MAX_DESTS fits) */
	__u16 pkts;    /* client packets modulo the sync period (a sync master's) */
	__u16 svc;     /* service index */
	__u8 state;    /* fulcrum-core's ConnState */
	__u8 flags;
};

/* Connection states: fulcrum-core's ConnState. */
#define ST_NONE 0
#define ST_ESTABLISHED 1
#define ST_UDP 11
#define N_STATES 12
#define N_TCP_STATES 11

/* Directions of the state table. */
#define DIR_INPUT 0
#define DIR_OUTPUT 1
#define DIR_INPUT_ONLY 2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, __u32); /* the service's index */
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct svc);
} svc_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct svc_sched);
} svc_sched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counters);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct dest);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct dest_conns);
} dest_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct counters);
} dest_stats SEC(".maps");

/* sh, dh and mh tables, as fulcrum-core computed them: key
 * (service index << 20 | bucket), value the destination's list index. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOOKUP);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} lookup SEC(".maps");

/* lblc and lblcr: per service and destination address, the real server
 * (lblc: one) or servers (lblcr: a set, newest first) it went to. */
#define LBLCR_MAX 16

struct loc_key {
	__u8 daddr[16];
	__u32 svc;
};

struct loc_set {
	__u64 lastuse;
	__u64 lastmod;
	__u32 n;
	__u32 members[LBLCR_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct loc_key);
	__type(value, struct loc_set);
} locality SEC(".maps");

/* Room for a new set off the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loc_set);
} loc_scratch SEC(".maps");

/* Persistence templates (IPVS's): a client network's real server for a
 * service, kept for the persistence timeout after the last new connection
 * and at least as long as the connections it placed. */
struct tmpl_key {
	__u8 snet[16];  /* the client's address under the service's netmask */
	__u8 vaddr[16];
	__u32 svc;
	__be16 vport;   /* the virtual port, 0 for port-zero services and FTP */
	__u8 proto;
	__u8 pad;
};

struct tmpl {
	__u64 expires;
	__u32 dest;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tmpl_key);
	__type(value, struct tmpl);
} templates SEC(".maps");

/* Room for a template key off the stack: [0] the packet path, [1] the
 * sweeper (which the packet path may interrupt on the same CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tmpl_key);
} scratch SEC(".maps");

/* The next hop towards each destination, as the FIB last said (per CPU):
 * a lookup per packet would cost a fifth of the forwarding rate. Trusted
 * for a second, for packets no longer than one the FIB passed, arriving on
 * the same interface. */
struct nexthop {
	__u64 expires;
	__u32 ifindex;
	__u32 ingress;
	__u16 max_len;
	__u8 smac[6];
	__u8 dmac[6];
	__u16 pad;
};

#define NEXTHOP_NS NSEC

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct nexthop);
} dest_nh SEC(".maps");

/* IPVS's TCP state table: [direction * 4 + flag][state], from fulcrum-core. */
struct tcp_table {
	__u8 next[256]; /* 12 * 11 used; indexes masked into range */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_table);
} tcp_table SEC(".maps");

/* Timeouts in seconds by state (`ipvsadm --set` and the defaults). */
struct timeouts {
	__u32 secs[16]; /* N_STATES used; indexes masked into range */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct timeouts);
} timeouts SEC(".maps");

/* An offset added to the kernel's monotonic clock (tests move time). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} clock SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EXC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} exceptions SEC(".maps");

/* What the last sweep did: [entries seen, flows expired]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sweep_result SEC(".maps");

#define NEXTHDR_ICMPV6 58
#define NEXTHDR_NONE 59
#define NSEC 1000000000ULL
#define AF_INET 2
#define AF_INET6 10

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int count(enum exception why, int verdict)
{
	__u32 k = why;
	__u64 *n = bpf_map_lookup_elem(&exceptions, &k);
	if (n)
		*n += 1;
	return verdict;
}

static __always_inline __u64 now_ns(void)
{
	__u32 z = 0;
	__u64 *off = bpf_map_lookup_elem(&clock, &z);
	/* The coarse clock (the tick's): timers need no better, and it costs
	 * less than the precise one. Userspace reads CLOCK_MONOTONIC_COARSE. */
	return bpf_ktime_get_coarse_ns() + (off ? *off : 0);
}

static __always_inline __u64 timeout_ns(__u8 state)
{
	__u32 z = 0;
	struct timeouts *t = bpf_map_lookup_elem(&timeouts, &z);
	if (!t || state >= N_STATES)
		return 2 * NSEC;
	__u32 i = state;
	barrier_var(i);
	return (__u64)t->secs[i & 15] * NSEC;
}

/* ---- Connection counts (ip_vs_bind_dest / ip_vs_unbind_dest) ---- */

static __always_inline int overloaded(const struct dest *d, const struct dest_conns *c)
{
	return c->overload == d->epoch + 1;
}

static __always_inline int available(const struct dest *d, const struct dest_conns *c)
{
	return !overloaded(d, c) && d->weight > 0;
}

static __always_inline void bind_dest(__u32 slot)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c)
		return;
	__sync_fetch_and_add(&c->inactive, 1);
	if (d->u_threshold && c->active + c->inactive >= d->u_threshold)
		c->overload = d->epoch + 1;
}

static __always_inline void unbind_dest(__u32 slot, int inactive)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c)
		return;
	if (inactive) {
		if (c->inactive)
			__sync_fetch_and_add(&c->inactive, -1);
	} else if (c->active) {
		__sync_fetch_and_add(&c->active, -1);
	}
	__u64 total = (__u64)c->active + c->inactive;
	if (d->l_threshold) {
		if (total < d->l_threshold)
			c->overload = 0;
	} else if (d->u_threshold) {
		if (total * 4 < (__u64)d->u_threshold * 3)
			c->overload = 0;
	} else {
		c->overload = 0;
	}
}

/* A template placed on / taken off a destination (persistconns). */
static __always_inline void bind_template(__u32 slot)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c)
		return;
	__sync_fetch_and_add(&c->persist, 1);
	if (d->u_threshold && c->active + c->inactive >= d->u_threshold)
		c->overload = d->epoch + 1;
}

static __always_inline void unbind_template(__u32 slot)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c)
		return;
	if (c->persist)
		__sync_fetch_and_add(&c->persist, -1);
	__u64 total = (__u64)c->active + c->inactive;
	if (d->l_threshold) {
		if (total < d->l_threshold)
			c->overload = 0;
	} else if (d->u_threshold) {
		if (total * 4 < (__u64)d->u_threshold * 3)
			c->overload = 0;
	} else {
		c->overload = 0;
	}
}

/* The template key of a flow of a persistent service, in scratch slot
 * `room` (fulcrum-core's schedule_persistent). */
static __always_inline struct tmpl_key *tmpl_key_of(__u32 room, const struct svc *sv, __u32 svc_idx,
						    const struct flow_key *k)
{
	struct tmpl_key *t = bpf_map_lookup_elem(&scratch, &room);
	if (!t)
		return 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		t->snet[i] = k->saddr[i] & sv->netmask[i];
	__builtin_memcpy(t->vaddr, k->daddr, 16);
	t->svc = svc_idx;
	t->proto = k->proto;
	t->pad = 0;
	t->vport = (k->dport == sv->port && sv->port != bpf_htons(21)) ? k->dport : 0;
	return t;
}

/* A flow's state moved: re-arm its timer; move the destination's count
 * between active (ESTABLISHED) and inactive (every other state). */
static __always_inline void set_state(struct flow *f, __u8 state, __u64 now)
{
	int was_inactive = f->flags & FLOW_INACTIVE;
	int inactive = state != ST_ESTABLISHED;
	__u64 timeout = timeout_ns(state);
	__u64 expires = now + timeout;
	/* The same state, re-armed a moment ago: the entry is left as it is
	 * (not written for every packet), so the timer moves in steps of at
	 * most a second, or a sixteenth of the timeout. */
	__u64 step = timeout >> 4;
	if (step > NSEC)
		step = NSEC;
	if (state == f->state && expires < f->expires + step)
		return;
	f->state = state;
	f->expires = expires;
	if (was_inactive == inactive)
		return;
	__u32 slot = f->dest;
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (inactive) {
		f->flags |= FLOW_INACTIVE;
		if (c) {
			if (c->active)
				__sync_fetch_and_add(&c->active, -1);
			__sync_fetch_and_add(&c->inactive, 1);
		}
	} else {
		f->flags &= ~FLOW_INACTIVE;
		if (c) {
			if (c->inactive)
				__sync_fetch_and_add(&c->inactive, -1);
			__sync_fetch_and_add(&c->active, 1);
		}
	}
}

/* tcp flags -> the table's flag row: rst, then syn, fin, ack; -1 none. */
static __always_inline int tcp_flag_row(__u8 flags)
{
	if (flags & 0x04)
		return 3;
	if (flags & 0x02)
		return 0;
	if (flags & 0x01)
		return 1;
	if (flags & 0x10)
		return 2;
	return -1;
}

/* SCTP, by its first chunk (`tflags` holds the chunk type): the
 * association's life in the TCP states' names and timeouts — setting up
 * (INIT, INIT ACK, COOKIE ECHO) as SYN_RECV, running as ESTABLISHED,
 * shutting down as FIN_WAIT, aborted or complete as CLOSE. */
static __always_inline __u8 sctp_state(__u8 cur, __u8 chunk)
{
	switch (chunk) {
	case 1:  /* INIT */
	case 2:  /* INIT ACK */
	case 10: /* COOKIE ECHO */
		return cur == ST_ESTABLISHED ? cur : 3; /* SYN_RECV */
	case 6:  /* ABORT */
	case 14: /* SHUTDOWN COMPLETE */
		return 6; /* CLOSE */
	case 7:  /* SHUTDOWN */
	case 8:  /* SHUTDOWN ACK */
		return 4; /* FIN_WAIT */
	default: /* COOKIE ACK, DATA, SACK, HEARTBEAT... */
		return ST_ESTABLISHED;
	}
}

static __always_inline void transition(struct flow *f, int dir, __u8 proto, __u8 tflags, __u64 now)
{
	__u8 next = f->state;
	if (proto == IPPROTO_SCTP) {
		next = sctp_state(f->state, tflags);
	} else if (proto == IPPROTO_TCP && f->state < N_TCP_STATES) {
		int row = tcp_flag_row(tflags);
		__u32 z = 0;
		struct tcp_table *t = bpf_map_lookup_elem(&tcp_table, &z);
		if (row >= 0 && t) {
			__u32 i = (__u32)(dir * 4 + row) * N_TCP_STATES + f->state;
			barrier_var(i);
			next = t->next[i & 0xff];
		}
	}
	set_state(f, next, now);
}

/* ---- The flow tables ----
 *
 * One entry per connection, found from both directions as IPVS finds its
 * connections: the bucket comes from the client's address, port and
 * protocol only (a keyed hash), which a client's packet carries as its
 * source and a NAT reply as its destination. A reply matches the flow
 * whose client it goes to and whose real server (address and port) sent
 * it, so NAT needs no second entry.
 *
 * Buckets of four slots in arrays sized when the program is loaded: IPv4
 * slots of 32 bytes, IPv6 slots of 64. A new flow takes a free slot of its
 * bucket, else the one that expires first (its counts go with it). */
#define KIND_FLOW 1

struct slot4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 kind;
	__u16 pad;
	struct flow f;
};

struct bucket4 {
	struct slot4 s[4];
};

struct slot6 {
	__u64 saddr[2];
	__u64 daddr[2];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 kind;
	__u16 pad;
	struct flow f;
	__u64 pad2;
};

struct bucket6 {
	struct slot6 s[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct bucket4);
} ftab4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct bucket6);
} ftab6 SEC(".maps");

/* Buckets - 1 of each table (powers of two), and the hash's key: set when
 * the program is loaded (the key at random, so that nobody can aim flows
 * at one bucket). */
const volatile __u32 ftab4_mask = 16383;
const volatile __u32 ftab6_mask = 4095;
const volatile __u64 ftab_seed = 0;

/* A 64-bit finaliser (MurmurHash3's): every input bit moves every output bit. */
static __always_inline __u64 fmix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* The bucket of a client (address, port, protocol). */
static __always_inline __u32 bucket4_index(const __u8 *caddr, __be16 cport, __u8 proto)
{
	__u32 a;
	__builtin_memcpy(&a, caddr, 4);
	__u64 h = fmix64(((__u64)a << 32 | (__u64)cport << 8 | proto) ^ ftab_seed);
	return (__u32)h & ftab4_mask;
}

static __always_inline __u32 bucket6_index(const __u64 *caddr, __be16 cport, __u8 proto)
{
	__u64 h = fmix64(caddr[0] ^ ftab_seed);
	h = fmix64(h ^ caddr[1]);
	h = fmix64(h ^ ((__u64)cport << 8 | proto));
	return (__u32)h & ftab6_mask;
}

static __always_inline int addr6_eq(const __u64 *a, const __u64 *b)
{
	return a[0] == b[0] && a[1] == b[1];
}

/* A client's packet's slot: the whole key matches. */
static __always_inline int slot4_is(const struct slot4 *s, const struct flow_key *k)
{
	__u32 sa, da;
	__builtin_memcpy(&sa, k->saddr, 4);
	__builtin_memcpy(&da, k->daddr, 4);
	return s->kind == KIND_FLOW && s->saddr == sa && s->daddr == da && s->sport == k->sport &&
	       s->dport == k->dport && s->proto == k->proto;
}

static __always_inline int slot6_is(const struct slot6 *s, const struct flow_key *k)
{
	return s->kind == KIND_FLOW && s->sport == k->sport && s->dport == k->dport &&
	       s->proto == k->proto && addr6_eq(s->saddr, (const __u64 *)k->saddr) &&
	       addr6_eq(s->daddr, (const __u64 *)k->daddr);
}

/* A NAT reply's slot: the flow of the client it goes to, bound to the
 * masquerading real server (address and port) it comes from. */
static __always_inline int reply_from(const struct flow *f, __be16 vport, const struct flow_key *r)
{
	__u32 slot = f->dest;
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	if (!d || d->fwd != FWD_MASQ || (d->port ? d->port : vport) != r->sport)
		return 0;
	if (r->family == 4) {
		__u32 x, y;
		__builtin_memcpy(&x, d->addr, 4);
		__builtin_memcpy(&y, r->saddr, 4);
		return x == y;
	}
	return addr6_eq((const __u64 *)d->addr, (const __u64 *)r->saddr);
}

static __always_inline int slot4_is_reply(const struct slot4 *s, const struct flow_key *r)
{
	__u32 ca;
	__builtin_memcpy(&ca, r->daddr, 4);
	return s->kind == KIND_FLOW && s->saddr == ca && s->sport == r->dport && s->proto == r->proto &&
	       reply_from(&s->f, s->dport, r);
}

static __always_inline int slot6_is_reply(const struct slot6 *s, const struct flow_key *r)
{
	return s->kind == KIND_FLOW && s->sport == r->dport && s->proto == r->proto &&
	       addr6_eq(s->saddr, (const __u64 *)r->daddr) && reply_from(&s->f, s->dport, r);
}

/* The slot (0-3) of bucket `b` where `test` holds, or -1. */
#define FIND4(b, test, k)                                                                        \
	(test(&(b)->s[0], k) ? 0 : test(&(b)->s[1], k) ? 1 : test(&(b)->s[2], k) ? 2 :           \
	 test(&(b)->s[3], k) ? 3 : -1)

/* The slot of bucket `b` for a new flow: a free one, else the flow that
 * expires first (expired ones first of all), whose counts go with it. */
#define TAKE4(b, n)                                                                              \
	do {                                                                                     \
		n = (b)->s[0].kind == 0 ? 0 : (b)->s[1].kind == 0 ? 1 : (b)->s[2].kind == 0 ? 2 : \
		    (b)->s[3].kind == 0 ? 3 : -1;                                                \
		if (n < 0) {                                                                     \
			__u64 least = (b)->s[0].f.expires;                                       \
			n = 0;                                                                   \
			if ((b)->s[1].f.expires < least) {                                       \
				least = (b)->s[1].f.expires;                                     \
				n = 1;                                                           \
			}                                                                        \
			if ((b)->s[2].f.expires < least) {                                       \
				least = (b)->s[2].f.expires;                                     \
				n = 2;                                                           \
			}                                                                        \
			if ((b)->s[3].f.expires < least)                                         \
				n = 3;                                                           \
			unbind_dest((b)->s[n & 3].f.dest, (b)->s[n & 3].f.flags & FLOW_INACTIVE); \
		}                                                                                \
	} while (0)

/* Where an entry is: (bucket << 2) | slot, or NOWHERE. The finders are
 * global functions, so the verifier checks each once, and the slot they
 * return is one unknown number to it rather than four paths through the
 * rest of the program. */
#define NOWHERE (-1)

/* The slot of a client's packet's flow (`reply`: of the NAT flow a real
 * server's reply, keyed as it arrives, belongs to), or NOWHERE. */
__attribute__((noinline)) int flow_find(struct flow_key *k, int reply)
{
	if (!k)
		return NOWHERE;
	const __u8 *caddr = reply ? k->daddr : k->saddr;
	__be16 cport = reply ? k->dport : k->sport;
	__u32 i;
	int n;
	if (k->family == 4) {
		i = bucket4_index(caddr, cport, k->proto);
		struct bucket4 *b = bpf_map_lookup_elem(&ftab4, &i);
		if (!b)
			return NOWHERE;
		n = reply ? FIND4(b, slot4_is_reply, k) : FIND4(b, slot4_is, k);
	} else {
		i = bucket6_index((const __u64 *)caddr, cport, k->proto);
		struct bucket6 *b = bpf_map_lookup_elem(&ftab6, &i);
		if (!b)
			return NOWHERE;
		n = reply ? FIND4(b, slot6_is_reply, k) : FIND4(b, slot6_is, k);
	}
	return n < 0 ? NOWHERE : (int)(i << 2 | n);
}

/* The slot for a new flow of a client's packet, its key written: the flow's
 * own if it is there, a free one, or the one evicted. */
__attribute__((noinline)) int flow_place(struct flow_key *k)
{
	if (!k)
		return NOWHERE;
	__u32 i;
	int n;
	if (k->family == 4) {
		i = bucket4_index(k->saddr, k->sport, k->proto);
		struct bucket4 *b = bpf_map_lookup_elem(&ftab4, &i);
		if (!b)
			return NOWHERE;
		n = FIND4(b, slot4_is, k);
		if (n < 0)
			TAKE4(b, n);
		struct slot4 *v = &b->s[n & 3];
		__builtin_memcpy(&v->saddr, k->saddr, 4);
		__builtin_memcpy(&v->daddr, k->daddr, 4);
		v->sport = k->sport;
		v->dport = k->dport;
		v->proto = k->proto;
		v->kind = KIND_FLOW;
		v->pad = 0;
	} else {
		i = bucket6_index((const __u64 *)k->saddr, k->sport, k->proto);
		struct bucket6 *b = bpf_map_lookup_elem(&ftab6, &i);
		if (!b)
			return NOWHERE;
		n = FIND4(b, slot6_is, k);
		if (n < 0)
			TAKE4(b, n);
		struct slot6 *v = &b->s[n & 3];
		__builtin_memcpy(v->saddr, k->saddr, 16);
		__builtin_memcpy(v->daddr, k->daddr, 16);
		v->sport = k->sport;
		v->dport = k->dport;
		v->proto = k->proto;
		v->kind = KIND_FLOW;
		v->pad = 0;
		v->pad2 = 0;
	}
	return (int)(i << 2 | (n & 3));
}

/* The flow at `at` of the table of `family`, with its virtual address and
 * port (the slot's destination) when `vaddr` is given; `free` empties it. */
static __always_inline struct flow *flow_at(__u8 family, int at, __u8 *vaddr, __be16 *vport, int free)
{
	if (at < 0)
		return 0;
	__u32 i = (__u32)at >> 2;
	__u32 n = (__u32)at & 3;
	if (family == 4) {
		struct bucket4 *b = bpf_map_lookup_elem(&ftab4, &i);
		if (!b)
			return 0;
		struct slot4 *s = &b->s[n];
		if (vaddr) {
			__builtin_memcpy(vaddr, &s->daddr, 4);
			*vport = s->dport;
		}
		if (free)
			s->kind = 0;
		return &s->f;
	}
	struct bucket6 *b = bpf_map_lookup_elem(&ftab6, &i);
	if (!b)
		return 0;
	struct slot6 *s = &b->s[n];
	if (vaddr) {
		__builtin_memcpy(vaddr, s->daddr, 16);
		*vport = s->dport;
	}
	if (free)
		s->kind = 0;
	return &s->f;
}

/* The flow of a client's packet. */
static __always_inline struct flow *flow_get(struct flow_key *k)
{
	return flow_at(k->family, flow_find(k, 0), 0, 0, 0);
}

/* The flow a NAT reply (keyed as it arrives) belongs to, with its virtual
 * address and port (the reply's new source). */
static __always_inline struct flow *reply_get(struct flow_key *r, __u8 *vaddr, __be16 *vport)
{
	return flow_at(r->family, flow_find(r, 1), vaddr, vport, 0);
}

/* A new flow for a key: where it now lives, or NULL. */
static __always_inline struct flow *flow_new(struct flow_key *k, const struct flow *nf)
{
	struct flow *f = flow_at(k->family, flow_place(k), 0, 0, 0);
	if (f)
		__builtin_memcpy(f, nf, sizeof(*nf));
	return f;
}

static __always_inline void flow_del(struct flow_key *k)
{
	flow_at(k->family, flow_find(k, 0), 0, 0, 1);
}

/* ---- Schedulers: each follows its fulcrum-core twin (and ip_vs_<name>.c) ---- */

struct scan {
	__u32 svc;     /* service index */
	__s32 best;    /* list index of the pick so far, -1 none */
	__s64 boh;     /* its overhead */
	__s64 bw;      /* its weight */
	__u32 start;   /* rr: where to start */
	__u32 n;       /* number of destinations */
	__u32 want;    /* rr: the slot to find */
	__s64 r1, r2;  /* twos */
	__s32 c1, c2;
	__s64 oh1, oh2;
	__s64 total;
	/* wrr */
	__s64 cw, mw, di;
	__s32 pos, stop, last;
	__u8 last_pass, restarted, done, pad;
};

/* The scan's state lives off the stack (per CPU): the packet path's stack
 * is near its limit, and bpf_loop callbacks reach it from here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan);
} scan_scratch SEC(".maps");

static __always_inline struct scan *scan_state(void)
{
	__u32 z = 0;
	return bpf_map_lookup_elem(&scan_scratch, &z);
}

/* The destination at list position i of the scan's service. */
static __always_inline int dest_at(__u32 svc, __u32 i, struct dest **d,
				   struct dest_conns **c, __u32 *slotp)
{
	__u32 k = svc;
	struct svc *sv = bpf_map_lookup_elem(&svc_conf, &k);
	if (!sv)
		return -1;
	__u32 slot = sv->slots[i & SVC_DEST_MASK];
	*d = bpf_map_lookup_elem(&dests, &slot);
	*c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (slotp)
		*slotp = slot;
	return (*d && *c) ? 0 : -1;
}

static __always_inline __s64 conn_overhead(const struct dest_conns *c)
{
	return ((__s64)c->active << 8) + c->inactive;
}

/* lc: the available destination with the fewest connections, first of equals. */
static long lc_step(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (!available(d, c))
		return 0;
	__s64 doh = conn_overhead(c);
	if (s->best < 0 || doh < s->boh) {
		s->best = i;
		s->boh = doh;
	}
	return 0;
}

/* wlc and sed (weighted_least): the first available destination, then
 * strictly better ones, skipping only overloaded ones. */
static __always_inline long weighted_least_step(__u32 i, void *ctx, int sed)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	__s64 doh = sed ? (__s64)c->active + 1 : conn_overhead(c);
	__s64 dw = d->weight;
	if (s->best < 0) {
		if (available(d, c)) {
			s->best = i;
			s->boh = doh;
			s->bw = dw;
		}
		return 0;
	}
	if (overloaded(d, c))
		return 0;
	if (s->boh * dw > doh * s->bw) {
		s->best = i;
		s->boh = doh;
		s->bw = dw;
	}
	return 0;
}

static long wlc_step(__u32 i, void *ctx)
{
	return weighted_least_step(i, ctx, 0);
}

static long sed_step(__u32 i, void *ctx)
{
	return weighted_least_step(i, ctx, 1);
}

/* nq: the first idle available destination, else as sed (first of equals). */
static long nq_step(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (!available(d, c))
		return 0;
	__s64 doh = (__s64)c->active + 1;
	__s64 dw = d->weight;
	if (c->active == 0) {
		s->best = i;
		return 1;
	}
	if (s->best < 0 || s->boh * dw > doh * s->bw) {
		s->best = i;
		s->boh = doh;
		s->bw = dw;
	}
	return 0;
}

/* fo: the highest weight not overloaded, first of equals. */
static long fo_step(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (!overloaded(d, c) && (__s64)d->weight > s->bw) {
		s->best = i;
		s->bw = d->weight;
	}
	return 0;
}

/* ovf: the highest weight whose active connections do not exceed it. */
static long ovf_step(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (overloaded(d, c) || c->active > d->weight || d->weight == 0)
		return 0;
	if (s->best < 0 || (__s64)d->weight > s->bw) {
		s->best = i;
		s->bw = d->weight;
	}
	return 0;
}

/* rr, first pass: where the last pick stands in the list. */
static long rr_find(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	__u32 slot;
	if (dest_at(s->svc, i, &d, &c, &slot))
		return 1;
	if (slot + 1 == s->want) {
		s->start = i + 1;
		return 1;
	}
	return 0;
}

/* rr, second pass: the first available destination from there, cyclically. */
static long rr_step(__u32 k, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (!s->n)
		return 1;
	__u32 i = (s->start + k) % s->n;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (available(d, c)) {
		s->best = i;
		return 1;
	}
	return 0;
}

/* wrr: one step of WeightedRoundRobin::schedule's walk. */
static long wrr_step(__u32 k, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (s->pos < (__s32)s->n) {
		__u32 i = s->pos;
		if (dest_at(s->svc, i, &d, &c, 0)) {
			s->done = 1;
			return 1;
		}
		if (!overloaded(d, c) && (__s64)d->weight >= s->cw) {
			s->best = i;
			s->last = i;
			s->done = 1;
			return 1;
		}
		if (s->stop == (__s32)i) {
			s->last = i;
			s->done = 1;
			return 1;
		}
		s->pos++;
		return 0;
	}
	s->pos = 0;
	s->cw -= s->di;
	if (s->cw <= 0) {
		s->cw = s->mw;
		if (s->last_pass || s->last < 0) {
			s->last = -1;
			s->done = 1;
			return 1;
		}
		s->restarted = 1;
	}
	s->last_pass = s->cw <= s->di;
	if (s->last_pass && s->restarted && s->last >= 0)
		s->stop = s->last;
	return 0;
}

/* twos, first pass: the sum of the available weights; the last available. */
static long twos_total(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (available(d, c)) {
		s->total += d->weight;
		s->best = i;
	}
	return 0;
}

/* twos, second pass: the two weighted random draws. */
static long twos_pick(__u32 i, void *ctx)
{
	struct scan *s = scan_state();
	if (!s)
		return 1;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if (!available(d, c))
		return 0;
	s->r1 -= d->weight;
	s->r2 -= d->weight;
	if (s->r1 <= 0 && s->c1 < 0) {
		s->c1 = i;
		s->oh1 = conn_overhead(c);
	}
	if (s->r2 <= 0 && s->c2 < 0) {
		s->c2 = i;
		s->oh2 = conn_overhead(c);
	}
	return s->c1 >= 0 && s->c2 >= 0;
}

static __always_inline __u32 splitmix_next(__u64 *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	__u64 z = *state;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (__u32)((z ^ (z >> 31)) >> 32);
}

/* The address "fold" IPVS hashes (fulcrum-core's addr_fold). */
static __always_inline __u32 addr_fold(const __u8 *a, __u8 family)
{
	__u32 w0 = ((__u32)a[0] << 24) | ((__u32)a[1] << 16) | ((__u32)a[2] << 8) | a[3];
	if (family == 4)
		return w0;
	__u32 w1 = ((__u32)a[4] << 24) | ((__u32)a[5] << 16) | ((__u32)a[6] << 8) | a[7];
	__u32 w2 = ((__u32)a[8] << 24) | ((__u32)a[9] << 16) | ((__u32)a[10] << 8) | a[11];
	__u32 w3 = ((__u32)a[12] << 24) | ((__u32)a[13] << 16) | ((__u32)a[14] << 8) | a[15];
	return w0 ^ w1 ^ w2 ^ w3;
}

static __always_inline __u32 hash_32(__u32 v, __u32 bits)
{
	return (v * 0x61C88647u) >> (32 - bits);
}

/* The list index in a service's sh/dh/mh table; -1 for an empty bucket. */
static __always_inline __s32 table_at(__u32 svc, __u32 bucket)
{
	__u32 k = (svc << 20) | (bucket & 0xfffff);
	__u32 *v = bpf_map_lookup_elem(&lookup, &k);
	return v ? (__s32)*v : -1;
}

static __always_inline int available_at(__u32 svc, __s32 i)
{
	struct dest *d;
	struct dest_conns *c;
	if (i < 0 || dest_at(svc, i, &d, &c, 0))
		return 0;
	return available(d, c);
}

struct sh_walk {
	__u32 svc;
	__u32 fold;
	__u32 port;
	__u32 ihash;
	__s32 found;
};

static __always_inline __u32 sh_hashkey(__u32 fold, __u32 port, __u32 offset)
{
	return (offset + hash_32(port + fold, HASH_TAB_BITS)) & (HASH_TAB_SIZE - 1);
}

/* sh's fallback: the next buckets in the table's own order. */
static long sh_step(__u32 offset, void *ctx)
{
	struct sh_walk *w = ctx;
	__u32 roffset = (offset + w->ihash) % HASH_TAB_SIZE;
	__s32 i = table_at(w->svc, sh_hashkey(w->fold, w->port, roffset));
	if (i < 0)
		return 1;
	if (available_at(w->svc, i)) {
		w->found = i;
		return 1;
	}
	return 0;
}

/* mh's hash: SipHash-1-3 of a 32-bit value with 64-bit keys, cut to 32
 * bits (fulcrum-core's hsiphash, the kernel's hsiphash on 64-bit). */
static __always_inline __u64 rotl64(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                             \
	do {                                                                                 \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);                \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                                     \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                                     \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);                \
	} while (0)

#define MH_KEY 2654435761ULL

static __always_inline __u32 mh_hash(__u32 fold, __u32 port, __u32 offset)
{
	__u64 k0 = MH_KEY, k1 = MH_KEY;
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k1 ^ 0x7465646279746573ULL;
	__u64 b = ((__u64)4 << 56) | (__u32)(offset + port + fold);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

struct mh_walk {
	__u32 svc;
	__u32 fold;
	__u32 port;
	__u32 ihash;
	__u32 m;
	__s32 found;
};

/* mh's fallback: the next offsets, rehashed. */
static long mh_step(__u32 offset, void *ctx)
{
	struct mh_walk *w = ctx;
	if (!w->m)
		return 1;
	__u32 roffset = (offset + w->ihash) % w->m;
	__s32 i = table_at(w->svc, mh_hash(w->fold, w->port, roffset) % w->m);
	if (i < 0)
		return 1;
	if (available_at(w->svc, i)) {
		w->found = i;
		return 1;
	}
	return 0;
}

/* A small scan: the service, a slot looked for, what was found. */
struct find {
	__u32 svc;
	__u32 want;
	__s32 best;
};

/* The list index of `slot` in the service (`want`), or -1. */
static long slot_step(__u32 i, void *ctx)
{
	struct find *s = ctx;
	struct dest *d;
	struct dest_conns *c;
	__u32 slot;
	if (dest_at(s->svc, i, &d, &c, &slot))
		return 1;
	if (slot == s->want) {
		s->best = i;
		return 1;
	}
	return 0;
}

static __always_inline __s32 index_of(__u32 svc, __u32 n, __u32 slot)
{
	struct find s = {};
	s.svc = svc;
	s.want = slot;
	s.best = -1;
	bpf_loop(n, slot_step, &s, 0);
	return s.best;
}

/* Some destination has fewer active connections than half its weight. */
static long half_step(__u32 i, void *ctx)
{
	struct find *s = ctx;
	struct dest *d;
	struct dest_conns *c;
	if (dest_at(s->svc, i, &d, &c, 0))
		return 1;
	if ((__u64)c->active * 2 < d->weight) {
		s->best = i;
		return 1;
	}
	return 0;
}

/* lblc's locality_overloaded: the destination is over its weight while
 * another is under half of its own. */
static __always_inline int locality_overloaded(__u32 svc, __u32 n, __u32 slot)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c || c->active <= d->weight)
		return 0;
	struct find s = {};
	s.svc = svc;
	s.best = -1;
	bpf_loop(n, half_step, &s, 0);
	return s.best >= 0;
}

/* A slot is still one of the service's destinations. */
static __always_inline int member_of(__u32 svc, __u32 slot)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	return d && d->svc == svc && !(d->flags & DEST_F_RETIRED);
}

static __always_inline __s64 overhead_of(__u32 slot, __s64 *weight, int *overload)
{
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	struct dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	if (!d || !c) {
		*weight = 0;
		*overload = 1;
		return 0;
	}
	*weight = d->weight;
	*overload = overloaded(d, c);
	return conn_overhead(c);
}

/* lblcr's walks over a set, one member per step (the set looked up
 * again each time: callbacks cannot hold map values). */
struct set_walk {
	struct loc_key lk;
	__s64 best, boh, bw;
	__s64 most, moh, mw;
	__u32 mj;
	__u32 at;
	__u32 n;
	__u32 want;
	__u32 found;
};

/* The walk's state, off the stack (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct set_walk);
} walk_scratch SEC(".maps");

static __always_inline struct set_walk *walk(void)
{
	__u32 z = 0;
	return bpf_map_lookup_elem(&walk_scratch, &z);
}

static long set_min_step(__u32 j, void *ctx)
{
	struct set_walk *w = walk();
	if (!w)
		return 1;
	struct loc_set *set = bpf_map_lookup_elem(&locality, &w->lk);
	if (!set)
		return 1;
	__u32 slot = set->members[j & (LBLCR_MAX - 1)];
	if (!member_of(w->lk.svc, slot))
		return 0;
	__s64 wt;
	int ov;
	__s64 oh = overhead_of(slot, &wt, &ov);
	if (ov)
		return 0;
	if (w->best < 0) {
		if (wt > 0) {
			w->best = slot;
			w->boh = oh;
			w->bw = wt;
		}
	} else if (w->boh * wt > oh * w->bw) {
		w->best = slot;
		w->boh = oh;
		w->bw = wt;
	}
	return 0;
}

static long set_max_step(__u32 j, void *ctx)
{
	struct set_walk *w = walk();
	if (!w)
		return 1;
	struct loc_set *set = bpf_map_lookup_elem(&locality, &w->lk);
	if (!set)
		return 1;
	__u32 slot = set->members[j & (LBLCR_MAX - 1)];
	if (!member_of(w->lk.svc, slot))
		return 0;
	__s64 wt;
	int ov;
	__s64 oh = overhead_of(slot, &wt, &ov);
	if (w->most < 0) {
		if (wt > 0) {
			w->most = slot;
			w->moh = oh;
			w->mw = wt;
			w->mj = j;
		}
	} else if (w->moh * wt < oh * w->mw && wt > 0) {
		w->most = slot;
		w->moh = oh;
		w->mw = wt;
		w->mj = j;
	}
	return 0;
}

/* Close the gap at `at`: members after it move up one. */
static long set_erase_step(__u32 j, void *ctx)
{
	struct set_walk *w = walk();
	if (!w)
		return 1;
	if (j < w->at || j + 1 >= w->n)
		return 0;
	struct loc_set *set = bpf_map_lookup_elem(&locality, &w->lk);
	if (!set)
		return 1;
	set->members[j & (LBLCR_MAX - 1)] = set->members[(j + 1) & (LBLCR_MAX - 1)];
	return 0;
}

/* Make room at the head: members move down one (from the end). */
static long set_shift_step(__u32 k, void *ctx)
{
	struct set_walk *w = walk();
	if (!w)
		return 1;
	__u32 j = LBLCR_MAX - 1 - k;
	if (j == 0 || j > w->n)
		return 0;
	struct loc_set *set = bpf_map_lookup_elem(&locality, &w->lk);
	if (!set)
		return 1;
	set->members[j & (LBLCR_MAX - 1)] = set->members[(j - 1) & (LBLCR_MAX - 1)];
	return 0;
}

static long set_has_step(__u32 j, void *ctx)
{
	struct set_walk *w = walk();
	if (!w)
		return 1;
	struct loc_set *set = bpf_map_lookup_elem(&locality, &w->lk);
	if (!set)
		return 1;
	if (set->members[j & (LBLCR_MAX - 1)] == w->want) {
		w->found = 1;
		return 1;
	}
	return 0;
}

/* Pick a destination for a new flow: its list index, or -1. A global
 * function, so the verifier checks it once, not at every call. */
__attribute__((noinline)) int fulcrum_schedule(__u32 svc_idx, struct flow_key *k, __u64 now)
{
	if (!k)
		return -1;
	struct svc *sv = bpf_map_lookup_elem(&svc_conf, &svc_idx);
	struct scan *sp = scan_state();
	if (!sv || !sp)
		return -1;
	__builtin_memset(sp, 0, sizeof(*sp));
	sp->svc = svc_idx;
	sp->best = -1;
	sp->n = sv->ndests;
	if (sp->n > MAX_SVC_DESTS)
		sp->n = MAX_SVC_DESTS;
	struct svc_sched *st = bpf_map_lookup_elem(&svc_sched, &svc_idx);
	if (!st)
		return -1;

	switch (sv->sched) {
	case S_RR:
		sp->want = st->rr_last;
		if (sp->want)
			bpf_loop(sp->n, rr_find, 0, 0);
		if (sp->start >= sp->n)
			sp->start = 0;
		bpf_loop(sp->n, rr_step, 0, 0);
		if (sp->best >= 0) {
			struct dest *d;
			struct dest_conns *c;
			__u32 slot;
			if (!dest_at(sp->svc, sp->best, &d, &c, &slot))
				st->rr_last = slot + 1;
		}
		return sp->best;
	case S_WRR:
		if (sv->wrr_mw == 0)
			return -1;
		sp->cw = st->wrr_cw;
		sp->mw = sv->wrr_mw;
		sp->di = sv->wrr_di ? sv->wrr_di : 1;
		sp->last = st->wrr_cl;
		sp->pos = sp->last + 1;
		sp->stop = -1;
		/* A pass per weight step in the worst case: bounded by the
		 * helper's limit, past which nothing is picked (counted). */
		bpf_loop(1 << 23, wrr_step, 0, 0);
		st->wrr_cw = sp->cw;
		st->wrr_cl = sp->done ? sp->last : -1;
		return sp->best;
	case S_LC:
		bpf_loop(sp->n, lc_step, 0, 0);
		return sp->best;
	case S_WLC:
		bpf_loop(sp->n, wlc_step, 0, 0);
		return sp->best;
	case S_SED:
		bpf_loop(sp->n, sed_step, 0, 0);
		return sp->best;
	case S_NQ:
		bpf_loop(sp->n, nq_step, 0, 0);
		return sp->best;
	case S_FO:
		bpf_loop(sp->n, fo_step, 0, 0);
		return sp->best;
	case S_OVF:
		bpf_loop(sp->n, ovf_step, 0, 0);
		return sp->best;
	case S_TWOS: {
		bpf_loop(sp->n, twos_total, 0, 0);
		if (sp->best < 0)
			return -1;
		sp->total += 1;
		__u64 rng = st->rng;
		sp->r1 = (__s64)((__u64)splitmix_next(&rng) % (__u64)sp->total);
		sp->r2 = (__s64)((__u64)splitmix_next(&rng) % (__u64)sp->total);
		st->rng = rng;
		sp->c1 = -1;
		sp->c2 = -1;
		bpf_loop(sp->n, twos_pick, 0, 0);
		if (sp->c1 >= 0)
			sp->best = sp->c1;
		if (sp->c1 >= 0 && sp->c2 >= 0) {
			struct dest *d1, *d2;
			struct dest_conns *c1, *c2;
			if (dest_at(sp->svc, sp->c1, &d1, &c1, 0) || dest_at(sp->svc, sp->c2, &d2, &c2, 0))
				return sp->best;
			if ((__s64)d2->weight * sp->oh1 > (__s64)d1->weight * sp->oh2)
				return sp->c2;
		}
		return sp->best;
	}
	case S_DH: {
		__s32 i = table_at(svc_idx, hash_32(addr_fold(k->daddr, k->family), HASH_TAB_BITS));
		return available_at(svc_idx, i) ? i : -1;
	}
	case S_SH: {
		struct sh_walk w = {};
		w.svc = svc_idx;
		w.fold = addr_fold(k->saddr, k->family);
		w.port = (sv->flags & SVC_SCHED2) ? bpf_ntohs(k->sport) : 0;
		w.ihash = sh_hashkey(w.fold, w.port, 0);
		w.found = -1;
		__s32 first = table_at(svc_idx, w.ihash);
		if (first < 0)
			return -1;
		if (available_at(svc_idx, first))
			return first;
		if (!(sv->flags & SVC_SCHED1))
			return -1;
		bpf_loop(HASH_TAB_SIZE, sh_step, &w, 0);
		return w.found;
	}
	case S_MH: {
		struct mh_walk w = {};
		w.svc = svc_idx;
		w.m = sv->mh_m;
		if (!w.m)
			return -1;
		w.fold = addr_fold(k->saddr, k->family);
		w.port = (sv->flags & SVC_SCHED2) ? bpf_ntohs(k->sport) : 0;
		w.ihash = mh_hash(w.fold, w.port, 0) % w.m;
		w.found = -1;
		__s32 first = table_at(svc_idx, w.ihash);
		if (first < 0)
			return -1;
		if (available_at(svc_idx, first))
			return first;
		if (!(sv->flags & SVC_SCHED1))
			return -1;
		bpf_loop(w.m, mh_step, &w, 0);
		return w.found;
	}
	case S_LBLC:
	case S_LBLCR: {
		struct loc_key lk = {};
		__builtin_memcpy(lk.daddr, k->daddr, 16);
		lk.svc = svc_idx;
		struct loc_set *set = bpf_map_lookup_elem(&locality, &lk);
		if (set && sv->sched == S_LBLC) {
			set->lastuse = now;
			__u32 slot = set->members[0];
			struct dest *d = bpf_map_lookup_elem(&dests, &slot);
			if (d && member_of(svc_idx, slot) && d->weight > 0 &&
			    !locality_overloaded(svc_idx, sp->n, slot))
				return index_of(svc_idx, sp->n, slot);
		} else if (set) {
			set->lastuse = now;
			__u32 n = set->n < LBLCR_MAX ? set->n : LBLCR_MAX;
			/* The least loaded member, first of equals. */
			struct set_walk *w = walk();
			if (!w)
				return -1;
			__builtin_memset(w, 0, sizeof(*w));
			__builtin_memcpy(&w->lk, &lk, sizeof(lk));
			w->best = -1;
			w->most = -1;
			bpf_loop(n, set_min_step, 0, 0);
			/* Shrink a set unchanged for longer than the expiration:
			 * the most loaded member goes. */
			if (n > 1 && now > set->lastmod + (__u64)sv->lblc_expire * NSEC) {
				bpf_loop(n, set_max_step, 0, 0);
				if (w->most >= 0) {
					w->at = w->mj;
					w->n = n;
					bpf_loop(LBLCR_MAX - 1, set_erase_step, 0, 0);
					set = bpf_map_lookup_elem(&locality, &lk);
					if (set) {
						set->n = n - 1;
						set->lastmod = now;
					}
				}
			}
			__s64 best = w->best;
			if (best >= 0 && !locality_overloaded(svc_idx, sp->n, best))
				return index_of(svc_idx, sp->n, best);
		}
		bpf_loop(sp->n, wlc_step, 0, 0);
		if (sp->best < 0)
			return -1;
		__u32 slot = sv->slots[sp->best & SVC_DEST_MASK];
		set = bpf_map_lookup_elem(&locality, &lk);
		if (set && sv->sched == S_LBLCR) {
			/* Joins the set at its head, unless already in it. */
			__u32 n = set->n < LBLCR_MAX ? set->n : LBLCR_MAX;
			struct set_walk *w = walk();
			if (!w)
				return -1;
			__builtin_memset(w, 0, sizeof(*w));
			__builtin_memcpy(&w->lk, &lk, sizeof(lk));
			w->want = slot;
			bpf_loop(n, set_has_step, 0, 0);
			if (!w->found && n < LBLCR_MAX) {
				w->n = n;
				bpf_loop(LBLCR_MAX - 1, set_shift_step, 0, 0);
				set = bpf_map_lookup_elem(&locality, &lk);
				if (set) {
					set->members[0] = slot;
					set->n = n + 1;
					set->lastmod = now;
				}
			}
		} else {
			__u32 z = 0;
			struct loc_set *ns = bpf_map_lookup_elem(&loc_scratch, &z);
			if (ns) {
				__builtin_memset(ns, 0, sizeof(*ns));
				ns->lastuse = now;
				ns->lastmod = now;
				ns->n = 1;
				ns->members[0] = slot;
				bpf_map_update_elem(&locality, &lk, ns, BPF_ANY);
			}
		}
		return sp->best;
	}
	default:
		return -1;
	}
}

/* Whether a client's packet opens a new connection on the ports of an
 * ended flow (`is_new_conn` and `is_new_conn_expected` of ip_vs_core.c):
 * a TCP SYN (no RST) or an SCTP INIT, the flow in TIME_WAIT or CLOSE, and
 * no persistence template controlling it (a persistent service's flows
 * are controlled by their client's template). */
static __always_inline int ended_flow_reused(const struct flow *f, __u8 proto, __u8 tflags)
{
	if (proto == IPPROTO_TCP) {
		if (!(tflags & 0x02) || (tflags & 0x04))
			return 0;
		if (f->state != 5 /* TIME_WAIT */ && f->state != 6 /* CLOSE */)
			return 0;
	} else if (proto == IPPROTO_SCTP) {
		if (tflags != 1 /* INIT */ || f->state != 6 /* CLOSE */)
			return 0;
	} else {
		return 0;
	}
	__u32 idx = f->svc;
	struct svc *sv = bpf_map_lookup_elem(&svc_conf, &idx);
	return sv && !sv->persist;
}

/* A persistent service's pick: the client network's template if its real
 * server is still in the service, else a new pick and a new template.
 * The slot, or -1. */
static __always_inline __s64 persist_pick(struct svc *sv, __u32 svc_idx, struct flow_key *k, __u64 now)
{
	struct tmpl_key *tk = tmpl_key_of(0, sv, svc_idx, k);
	if (!tk)
		return -1;
	__u64 timeout = (__u64)sv->persist * NSEC;
	struct tmpl *t = bpf_map_lookup_elem(&templates, tk);
	if (t) {
		__u32 slot = t->dest;
		struct dest *d = bpf_map_lookup_elem(&dests, &slot);
		if (t->expires > now && d && !(d->flags & DEST_F_RETIRED) && d->svc == svc_idx) {
			t->expires = now + timeout;
			return slot;
		}
		/* Dead (its real server left the service) or expired. */
		unbind_template(slot);
		bpf_map_delete_elem(&templates, tk);
	}
	__s32 i = fulcrum_schedule(svc_idx, k, now);
	if (i < 0)
		return -1;
	struct tmpl nt = {};
	nt.expires = now + timeout;
	nt.dest = sv->slots[i & SVC_DEST_MASK];
	bpf_map_update_elem(&templates, tk, &nt, BPF_ANY);
	bind_template(nt.dest);
	return nt.dest;
}

/* ---- Checksums (RFC 1624 incremental updates) ---- */

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The sum to add for `len` bytes (even, at most 16) changing from old to new. */
static __always_inline __u32 csum_delta(const __u8 *old, const __u8 *new, int len)
{
	__u32 acc = 0;
#pragma unroll
	for (int i = 0; i < 16; i += 2) {
		if (i < len) {
			__u16 o = ((__u16)old[i] << 8) | old[i + 1];
			__u16 n = ((__u16)new[i] << 8) | new[i + 1];
			acc += (__u16)~o;
			acc += n;
		}
	}
	return acc;
}

/* Apply a delta to a checksum field (network order, read byte-wise). */
static __always_inline void csum_apply(__u8 *field, __u32 delta, int udp)
{
	__u16 old = ((__u16)field[0] << 8) | field[1];
	if (udp && old == 0)
		return; /* IPv4 UDP without a checksum stays without */
	__u32 s = (__u16)~old;
	s += delta;
	__u16 res = ~csum_fold32(s);
	if (udp && res == 0)
		res = 0xffff;
	field[0] = res >> 8;
	field[1] = res & 0xff;
}

/* ---- ICMP errors ---- */

/* Answer the IPv4 packet in the frame with "fragmentation needed" (type 3
 * code 4) carrying `mtu`, from its destination back to its source, out of
 * the interface it came in on: the packet's header and first 8 bytes
 * follow, as RFC 792 asks. */
static __attribute__((noinline)) int frag_needed(struct xdp_md *ctx, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr eth;
	if (data + sizeof(eth) + 20 > end)
		return XDP_DROP;
	__builtin_memcpy(&eth, data, sizeof(eth));
	__u8 *ip = data + sizeof(eth);
	__u32 ihl = (ip[0] & 0x0f) * 4;
	if (ihl < 20 || ihl > 60)
		return XDP_DROP;
	__u8 src[4], dst[4];
	__builtin_memcpy(src, ip + 12, 4);
	__u8 tos = ip[1];
	__builtin_memcpy(dst, ip + 16, 4);
	__u32 quoted = ihl + 8;
	__u32 want = sizeof(eth) + 28 + quoted;
	__u32 have = (__u32)(end - data);
	if (have < want - 28)
		return XDP_DROP;
	/* Room for the new IP and ICMP headers before the quoted packet. */
	if (bpf_xdp_adjust_head(ctx, -28))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	have = (__u32)(end - data);
	if (have > want && bpf_xdp_adjust_tail(ctx, (int)want - (int)have))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *e = data;
	if ((void *)(e + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(e->h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(e->h_source, eth.h_dest, ETH_ALEN);
	e->h_proto = bpf_htons(ETH_P_IP);
	__u8 *nip = (void *)(e + 1);
	if ((void *)(nip + 28) > end)
		return XDP_DROP;
	__u16 tot = 28 + quoted;
	nip[0] = 0x45;
	nip[1] = tos & 0xfc;
	nip[2] = tot >> 8;
	nip[3] = tot & 0xff;
	nip[4] = 0;
	nip[5] = 0;
	nip[6] = 0;
	nip[7] = 0;
	nip[8] = 64;
	nip[9] = IPPROTO_ICMP;
	nip[10] = 0;
	nip[11] = 0;
	__builtin_memcpy(nip + 12, dst, 4);
	__builtin_memcpy(nip + 16, src, 4);
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 20; i += 2)
		sum += ((__u32)nip[i] << 8) | nip[i + 1];
	__u16 c = ~csum_fold32(sum);
	nip[10] = c >> 8;
	nip[11] = c & 0xff;
	__u8 *icmp = nip + 20;
	icmp[0] = 3;
	icmp[1] = 4;
	icmp[2] = 0;
	icmp[3] = 0;
	icmp[4] = 0;
	icmp[5] = 0;
	icmp[6] = (mtu >> 8) & 0xff;
	icmp[7] = mtu & 0xff;
	sum = 0;
	for (int i = 0; i < 8 + 68; i += 2) {
		if ((__u32)i >= 8 + quoted)
			break;
		if ((void *)(icmp + i + 2) > end)
			break;
		sum += ((__u32)icmp[i] << 8) | icmp[i + 1];
	}
	c = ~csum_fold32(sum);
	icmp[2] = c >> 8;
	icmp[3] = c & 0xff;
	return XDP_TX;
}

/* ---- The packet path ---- */

struct pkt {
	void *l3;
	__u8 *ip;       /* the IP header */
	__u8 *l4;
	__u8 *csum;     /* the L4 checksum, NULL for SCTP */
	__u32 l3_len;   /* the IP packet's length, for the counters */
	__u64 now;      /* the program's clock for this packet */
	__u8 family;
	__u8 proto;
	__u8 tflags;
	__u8 udp;
	__u8 route;     /* forward(): routed (NAT), so the TTL goes down */
	__u8 reply;     /* forward(): a NAT reply, from the virtual address */
	__u32 icmp_to;  /* icmp4_error(): the real server's slot, or ~0 for the client */
};

/* Rewrite one address (and port, unless 0) of the packet: the
 * destination when `dst`, else the source; checksums follow. */
static __always_inline void rewrite(struct pkt *p, void *end, int dst, const __u8 *addr, __be16 port)
{
	__u8 *pt = p->l4 + (dst ? 2 : 0);
	if ((void *)(pt + 2) > end)
		return;
	__u8 newport[2];
	__builtin_memcpy(newport, &port, 2);
	__u32 port_delta = port ? csum_delta(pt, newport, 2) : 0;
	if (p->family == 4) {
		__u8 *a = p->ip + (dst ? 16 : 12);
		__u8 *ipc = p->ip + 10;
		if ((void *)(a + 4) > end || (void *)(ipc + 2) > end)
			return;
		__u32 delta = csum_delta(a, addr, 4);
		if (p->csum && (void *)(p->csum + 2) <= end)
			csum_apply(p->csum, delta + port_delta, p->udp);
		csum_apply(ipc, delta, 0);
		__builtin_memcpy(a, addr, 4);
	} else {
		__u8 *a = p->ip + (dst ? 24 : 8);
		if ((void *)(a + 16) > end)
			return;
		__u32 delta = csum_delta(a, addr, 16);
		if (p->csum && (void *)(p->csum + 2) <= end)
			csum_apply(p->csum, delta + port_delta, 0);
		__builtin_memcpy(a, addr, 16);
	}
	if (port)
		__builtin_memcpy(pt, newport, 2);
}

/* Send the frame on towards `to` (an address of `family`): the FIB picks
 * the interface and the neighbour; with `ttl` the TTL/hop limit drops by
 * one as in routing. Without a neighbour yet, the kernel forwards it. */
/* Not inlined: its FIB lookup's room is on its own stack frame. */
/* Next hops the FIB knows no neighbour (MAC address) for yet, as the
 * program met them: the controller has the kernel resolve each (a
 * neighbour request with NTF_USE) and deletes it. Packets that the kernel
 * cannot forward in the program's stead — direct routing and tunnelling
 * (they bear the virtual address, which the kernel would deliver locally)
 * and NAT replies (their source is the director's own address, which the
 * kernel takes for a martian) — are dropped meanwhile, as a router drops
 * what waits too long for ARP; their senders retransmit. */
struct neigh_key {
	__u8 addr[16];
	__u32 ifindex;
	__u8 family;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct neigh_key);
	__type(value, __u64);
} need_neigh SEC(".maps");

/* Room for the key off the stack: forward() and encap() are deep enough
 * (a 6.1 kernel's verifier allows 512 bytes down the whole call chain). */
struct neigh_scratch {
	struct neigh_key k;
	__u64 one;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct neigh_scratch);
} neigh_scratch SEC(".maps");

static __always_inline int no_neigh(const struct bpf_fib_lookup *fib)
{
	__u32 z = 0;
	struct neigh_scratch *n = bpf_map_lookup_elem(&neigh_scratch, &z);
	if (n) {
		__builtin_memset(&n->k, 0, sizeof(n->k));
		n->k.ifindex = fib->ifindex;
		if (fib->family == AF_INET) {
			n->k.family = 4;
			__builtin_memcpy(n->k.addr, &fib->ipv4_dst, 4);
		} else {
			n->k.family = 6;
			__builtin_memcpy(n->k.addr, fib->ipv6_dst, 16);
		}
		n->one = 1;
		bpf_map_update_elem(&need_neigh, &n->k, &n->one, BPF_ANY);
	}
	return count(EXC_NO_NEIGH, XDP_DROP);
}

static __attribute__((noinline)) int forward(struct xdp_md *ctx, struct pkt *p, const __u8 *to,
					     struct nexthop *nh)
{
	int ttl = p->route;
	__u64 now = p->now;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 ifindex;
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
	if (nh && nh->expires > now && nh->ingress == ctx->ingress_ifindex &&
	    p->l3_len <= nh->max_len) {
		ifindex = nh->ifindex;
		__builtin_memcpy(smac, nh->smac, ETH_ALEN);
		__builtin_memcpy(dmac, nh->dmac, ETH_ALEN);
	} else {
		struct bpf_fib_lookup fib = {};
		fib.ifindex = ctx->ingress_ifindex;
		fib.l4_protocol = p->proto;
		if (p->family == 4) {
			if ((void *)(p->ip + 20) > end)
				return XDP_PASS;
			fib.family = AF_INET;
			fib.tos = p->ip[1];
			fib.tot_len = p->l3_len;
			__builtin_memcpy(&fib.ipv4_src, p->ip + 12, 4);
			__builtin_memcpy(&fib.ipv4_dst, to, 4);
		} else {
			if ((void *)(p->ip + 40) > end)
				return XDP_PASS;
			fib.family = AF_INET6;
			fib.tot_len = p->l3_len;
			__builtin_memcpy(fib.ipv6_src, p->ip + 8, 16);
			__builtin_memcpy(fib.ipv6_dst, to, 16);
		}
		long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		/* A NAT packet on its way in the kernel can forward itself
		 * (resolving the next hop, or answering "fragmentation
		 * needed"); the others wait for the controller to have the
		 * neighbour resolved (see `need_neigh`). */
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && (!ttl || p->reply))
			return no_neigh(&fib);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return ttl ? count(EXC_TO_KERNEL, XDP_PASS) : count(EXC_NO_NEIGH, XDP_DROP);
		ifindex = fib.ifindex;
		__builtin_memcpy(smac, fib.smac, ETH_ALEN);
		__builtin_memcpy(dmac, fib.dmac, ETH_ALEN);
		if (nh) {
			if (nh->expires <= now || nh->ingress != ctx->ingress_ifindex)
				nh->max_len = 0;
			nh->expires = now + NEXTHOP_NS;
			nh->ifindex = ifindex;
			nh->ingress = ctx->ingress_ifindex;
			if (p->l3_len > nh->max_len)
				nh->max_len = p->l3_len;
			__builtin_memcpy(nh->smac, smac, ETH_ALEN);
			__builtin_memcpy(nh->dmac, dmac, ETH_ALEN);
		}
	}
	if (ttl) {
		if (p->family == 4) {
			if ((void *)(p->ip + 20) > end)
				return XDP_PASS;
			if (p->ip[8] <= 1)
				return count(EXC_TTL, XDP_PASS);
			/* TTL sits in the high byte of its checksum word. */
			__u8 old[2] = {p->ip[8], p->ip[9]};
			p->ip[8] -= 1;
			__u32 delta = csum_delta(old, p->ip + 8, 2);
			csum_apply(p->ip + 10, delta, 0);
		} else {
			if ((void *)(p->ip + 40) > end)
				return XDP_PASS;
			if (p->ip[7] <= 1)
				return count(EXC_TTL, XDP_PASS);
			p->ip[7] -= 1;
		}
	}
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/* Tunnelling: the packet goes inside a new IP header to the real server
 * (IP-in-IP, or IPv6-in-IPv6), from the director's address towards it,
 * out of the interface the FIB names. Too big for the tunnel's MTU, or no
 * next hop yet: dropped, counted. */
/* encap()'s answer when an IPv6 packet is too big for the tunnel: the
 * caller answers "packet too big" with the MTU left in p->icmp_to. */
#define TOO_BIG6 100

static __attribute__((noinline)) int packet_too_big(struct xdp_md *ctx, __u32 mtu);

static __attribute__((noinline)) int encap(struct xdp_md *ctx, struct pkt *p, struct dest *d)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (p->l3 != data + sizeof(struct ethhdr))
		return count(EXC_UNSUPPORTED, XDP_PASS); /* VLAN-tagged */
	int v4 = p->family == 4;
	int gue = d->tun_type == TUN_GUE;
	__u16 iphlen = v4 ? 20 : 40;
	__u16 hlen = iphlen + (gue ? GUE_LEN : 0);
	__u8 head[4] = {};
	if (v4) {
		if ((void *)(p->ip + 20) > end)
			return XDP_PASS;
		head[0] = p->ip[1];        /* TOS */
		head[1] = p->ip[6] & 0x40; /* DF */
	} else {
		if ((void *)(p->ip + 40) > end)
			return XDP_PASS;
		__builtin_memcpy(head, p->ip, 4); /* traffic class, flow label */
	}
	/* GUE's source port spreads the flows as IPVS's does (the inner
	 * addresses and ports hashed into the kernel's default local port
	 * range), so that receivers' RSS and ECMP paths see many flows. */
	__be16 sport = 0;
	if (gue) {
		__u32 a[4] = {};
		if (v4) {
			if ((void *)(p->ip + 20) > end)
				return XDP_PASS;
			__builtin_memcpy(&a[0], p->ip + 12, 4);
			__builtin_memcpy(&a[1], p->ip + 16, 4);
		} else {
			if ((void *)(p->ip + 40) > end)
				return XDP_PASS;
			__builtin_memcpy(&a[0], p->ip + 20, 4);
			__builtin_memcpy(&a[1], p->ip + 36, 4);
		}
		if ((void *)(p->l4 + 4) <= end)
			__builtin_memcpy(&a[2], p->l4, 4);
		__u64 h = fmix64(((__u64)a[0] << 32 | a[1]) ^ ((__u64)a[2] << 16) ^ p->proto);
		sport = bpf_htons((__u16)((((h & 0xffffffff) * (60999 - 32768)) >> 32) + 32768));
	}
	struct bpf_fib_lookup fib = {};
	fib.ifindex = ctx->ingress_ifindex;
	fib.tot_len = p->l3_len + hlen;
	if (gue) {
		fib.sport = sport;
		fib.dport = d->tun_port;
	}
	if (v4) {
		fib.family = AF_INET;
		fib.l4_protocol = gue ? IPPROTO_UDP : IPPROTO_IPIP;
		fib.tos = head[0];
		__builtin_memcpy(&fib.ipv4_src, d->tun_src, 4);
		__builtin_memcpy(&fib.ipv4_dst, d->addr, 4);
	} else {
		fib.family = AF_INET6;
		fib.l4_protocol = gue ? IPPROTO_UDP : IPPROTO_IPV6;
		__builtin_memcpy(fib.ipv6_src, d->tun_src, 16);
		__builtin_memcpy(fib.ipv6_dst, d->addr, 16);
	}
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* The client learns the path's MTU less the tunnel's header. */
		if (v4 && head[1] && fib.mtu_result > hlen)
			return count(EXC_TOO_BIG, frag_needed(ctx, fib.mtu_result - hlen));
		if (!v4) {
			/* IPv6 goes no lower than 1280. The answer is built by
			 * the caller (its stack is shallower). */
			p->icmp_to = fib.mtu_result > hlen + 1280 ? fib.mtu_result - hlen : 1280;
			count(EXC_TOO_BIG, 0);
			return TOO_BIG6;
		}
		return count(EXC_TOO_BIG, XDP_DROP);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return no_neigh(&fib);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return count(EXC_NO_NEIGH, XDP_DROP);
	__u16 inner = p->l3_len;
	if (bpf_xdp_adjust_head(ctx, -(int)hlen))
		return count(EXC_UNSUPPORTED, XDP_PASS);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	__u8 *ip = (void *)(eth + 1);
	if (v4) {
		if ((void *)(ip + 20) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		__u16 tot = inner + hlen;
		ip[0] = 0x45;
		ip[1] = head[0];
		ip[2] = tot >> 8;
		ip[3] = tot & 0xff;
		ip[4] = 0;
		ip[5] = 0;
		ip[6] = head[1];
		ip[7] = 0;
		ip[8] = 64;
		ip[9] = gue ? IPPROTO_UDP : IPPROTO_IPIP;
		ip[10] = 0;
		ip[11] = 0;
		__builtin_memcpy(ip + 12, d->tun_src, 4);
		__builtin_memcpy(ip + 16, d->addr, 4);
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 20; i += 2)
			sum += ((__u32)ip[i] << 8) | ip[i + 1];
		__u16 c = ~csum_fold32(sum);
		ip[10] = c >> 8;
		ip[11] = c & 0xff;
	} else {
		if ((void *)(ip + 40) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		__builtin_memcpy(ip, head, 4);
		__u16 payload = inner + hlen - 40;
		ip[4] = payload >> 8;
		ip[5] = payload & 0xff;
		ip[6] = gue ? IPPROTO_UDP : IPPROTO_IPV6;
		ip[7] = 64;
		__builtin_memcpy(ip + 8, d->tun_src, 16);
		__builtin_memcpy(ip + 24, d->addr, 16);
	}
	if (gue) {
		/* UDP without a checksum (IPVS's --tun-nocsum, its default; for
		 * IPv6 the receiver must accept zero checksums, as the decap
		 * program and Linux's fou with IPv6 do), then GUE. */
		__u8 *udp = ip + iphlen;
		if ((void *)(udp + GUE_LEN) > end)
			return XDP_DROP;
		__u16 ulen = inner + GUE_LEN;
		__builtin_memcpy(udp, &sport, 2);
		__builtin_memcpy(udp + 2, &d->tun_port, 2);
		udp[4] = ulen >> 8;
		udp[5] = ulen & 0xff;
		udp[6] = 0;
		udp[7] = 0;
		udp[8] = 0;
		udp[9] = v4 ? IPPROTO_IPIP : IPPROTO_IPV6;
		udp[10] = 0;
		udp[11] = 0;
	}
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

/* ---- Connection sync, the sending side (a master director) ----
 *
 * While the controller sends sync messages (`sync_conf.on`), a client's
 * packet reports its flow through the ring buffer `sync_out` when IPVS's
 * master would sync the connection (ip_vs_sync_conn_needed, with its
 * default `sync_refresh_period` of 0): TCP (and SCTP) only in the
 * established and closing states, at once on a change into a closing
 * state, otherwise at the `threshold`th client packet and every `period`
 * packets after (`period` 0: once) — and, beyond IPVS, when it becomes
 * established after the `threshold`th packet. UDP by the packets alone. The
 * controller turns reports into sync messages (and adds the persistence
 * template of a persistent service's flow, as IPVS sends a connection's
 * template with it). A full ring loses the report, counted. */
struct sync_conf {
	__u32 on;
	__u32 threshold;
	__u32 period;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sync_conf);
} sync_conf SEC(".maps");

/* A report: the flow's key as the client's packet carries it, its real
 * server and service, state and timeout. 56 bytes. */
struct sync_ev {
	__u8 caddr[16];
	__u8 vaddr[16];
	__u64 stamp;    /* ns, this program's clock: the sender's lag */
	__be16 cport;
	__be16 vport;
	__u16 dest;     /* slot */
	__u16 svc;      /* service index */
	__u8 proto;
	__u8 family;
	__u8 state;     /* fulcrum-core's ConnState */
	__u8 flags;     /* FLOW_INACTIVE */
	__u32 timeout;  /* seconds */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} sync_out SEC(".maps");

/* [reports made, reports lost to a full ring], per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sync_stats SEC(".maps");

/* The states IPVS syncs a TCP connection in: ES, FIN_WAIT, TIME_WAIT,
 * CLOSE, CLOSE_WAIT (fulcrum-core's numbers 1, 4, 5, 6, 7; SCTP's are kept
 * in the same names). */
#define SYNC_TCP_STATES ((1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7))

static __always_inline void sync_stat(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&sync_stats, &k);
	if (n)
		*n += 1;
}

/* After a client's packet moved flow `f` from state `old`. */
static __always_inline void sync_report(const struct flow_key *k, struct flow *f, __u8 old, __u64 now)
{
	__u32 z = 0;
	struct sync_conf *sc = bpf_map_lookup_elem(&sync_conf, &z);
	if (!sc || !sc->on)
		return;
	/* The client's packets, as IPVS's in_pkts: modulo the period, or
	 * held at the top when there is none. */
	__u32 pkts = (__u32)f->pkts + 1;
	if (sc->period) {
		if (pkts >= sc->period)
			pkts = 0;
	} else if (pkts > 0xffff) {
		pkts = 0xffff;
	}
	f->pkts = pkts;
	__u8 st = f->state;
	if (k->proto != IPPROTO_UDP) {
		if (st >= 16 || !((1 << st) & SYNC_TCP_STATES))
			return;
		if (st != old && st != ST_ESTABLISHED)
			goto report;
		/* Established only after the threshold's packet went by (SYNs
		 * sent again while the reply was lost): at once, where IPVS would
		 * leave the connection unsynced until its 53rd packet. */
		if (st != old && pkts > sc->threshold)
			goto report;
	}
	if (pkts != sc->threshold)
		return;
report:;
	struct sync_ev *e = bpf_ringbuf_reserve(&sync_out, sizeof(*e), 0);
	if (!e) {
		sync_stat(1);
		return;
	}
	__builtin_memcpy(e->caddr, k->saddr, 16);
	__builtin_memcpy(e->vaddr, k->daddr, 16);
	e->stamp = now;
	e->cport = k->sport;
	e->vport = k->dport;
	e->dest = f->dest;
	e->svc = f->svc;
	e->proto = k->proto;
	e->family = k->family;
	e->state = st;
	e->flags = f->flags;
	e->timeout = (__u32)(timeout_ns(st) / NSEC);
	/* The kernel wakes the sender only when this is the first report it
	 * has not seen (it then sleeps a moment and reads them all): one
	 * wakeup a batch, none while it reads. */
	bpf_ringbuf_submit(e, 0);
	sync_stat(0);
}

static __always_inline void account(__u32 svc, __u32 slot, int out, __u64 bytes, int new_conn)
{
	struct counters *c = bpf_map_lookup_elem(&svc_stats, &svc);
	if (c) {
		c->conns += new_conn;
		if (out) {
			c->outpkts += 1;
			c->outbytes += bytes;
		} else {
			c->inpkts += 1;
			c->inbytes += bytes;
		}
	}
	c = bpf_map_lookup_elem(&dest_stats, &slot);
	if (c) {
		c->conns += new_conn;
		if (out) {
			c->outpkts += 1;
			c->outbytes += bytes;
		} else {
			c->inpkts += 1;
			c->inbytes += bytes;
		}
	}
}

/* A real server's reply of a NAT flow, found by its key: the virtual
 * address and port back as the source, ready to forward (0); -1 when it is
 * no live flow's. Not inlined: the lookup's room is its own. */
static __attribute__((noinline)) int reply_of_nat(struct xdp_md *ctx, struct pkt *p, struct flow_key *key)
{
	void *end = (void *)(long)ctx->data_end;
	__u8 vaddr[16] = {};
	__be16 vport = 0;
	struct flow *ff = reply_get(key, vaddr, &vport);
	if (!ff || ff->expires <= p->now)
		return -1;
	transition(ff, DIR_OUTPUT, p->proto, p->tflags, p->now);
	account(ff->svc, ff->dest, 1, p->l3_len, 0);
	rewrite(p, end, 0, vaddr, vport == key->sport ? 0 : vport);
	p->route = 1;
	p->reply = 1;
	return 0;
}

/* A client's packet for a flow bound to `slot`: rewrite and send on. */
static __always_inline int to_real_server(struct xdp_md *ctx, struct pkt *p, struct flow_key *k,
					  struct flow *f, __u64 now, int new_conn)
{
	void *end = (void *)(long)ctx->data_end;
	__u32 slot = f->dest;
	struct dest *d = bpf_map_lookup_elem(&dests, &slot);
	if (!d)
		return XDP_PASS;
	int dir = d->fwd == FWD_MASQ ? DIR_INPUT : DIR_INPUT_ONLY;
	__u8 old = f->state;
	transition(f, dir, p->proto, p->tflags, now);
	sync_report(k, f, old, now);
	account(f->svc, slot, 0, p->l3_len, new_conn);
	if (d->family != p->family)
		return count(EXC_UNSUPPORTED, XDP_PASS);
	if (d->fwd == FWD_MASQ) {
		if (!p->csum && p->proto != IPPROTO_SCTP)
			return XDP_PASS;
		if (p->proto == IPPROTO_SCTP && d->port && d->port != k->dport)
			return count(EXC_UNSUPPORTED, XDP_PASS);
		__be16 port = d->port ? d->port : k->dport;
		rewrite(p, end, 1, d->addr, port == k->dport ? 0 : port);
		p->route = 1;
		return forward(ctx, p, d->addr, bpf_map_lookup_elem(&dest_nh, &slot));
	}
	if (d->fwd == FWD_ROUTE) {
		p->route = 0;
		return forward(ctx, p, d->addr, bpf_map_lookup_elem(&dest_nh, &slot));
	}
	if (d->fwd == FWD_TUNNEL) {
		int v = encap(ctx, p, d);
		return v == TOO_BIG6 ? packet_too_big(ctx, p->icmp_to) : v;
	}
	return count(EXC_UNSUPPORTED, XDP_PASS);
}

/* The same for IPv6: "packet too big" (type 2) carrying `mtu`, quoting the
 * packet's header and first 8 bytes (enough for the sender to find its
 * socket; RFC 4443 allows less than the whole packet). Built in place:
 * the new headers go before the packet, which is cut after the quote. */
static __attribute__((noinline)) int packet_too_big(struct xdp_md *ctx, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 14 + 48 > end)
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -48))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	__u32 want = 14 + 48 + 48;
	__u32 have = (__u32)(end - data);
	if (have > want && bpf_xdp_adjust_tail(ctx, (int)want - (int)have))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	__u8 *f = data;
	if ((void *)(f + 14 + 96) > end)
		return XDP_DROP;
	/* The old Ethernet header now sits at 48, the old IPv6 one at 62. */
	__u8 *old = f + 48;
	__u8 *oip = f + 62;
	__builtin_memcpy(f, old + 6, 6);  /* back to the sender */
	__builtin_memcpy(f + 6, old, 6);  /* from us */
	f[12] = 0x86;
	f[13] = 0xdd;
	__u8 *nip = f + 14;
	nip[0] = 0x60;
	nip[1] = 0;
	nip[2] = 0;
	nip[3] = 0;
	nip[4] = 0;
	nip[5] = 56;
	nip[6] = NEXTHDR_ICMPV6;
	nip[7] = 64;
	__builtin_memcpy(nip + 8, oip + 24, 16);  /* from the VIP */
	__builtin_memcpy(nip + 24, oip + 8, 16);  /* to the client */
	__u8 *icmp = nip + 40;
	icmp[0] = 2;
	icmp[1] = 0;
	icmp[2] = 0;
	icmp[3] = 0;
	icmp[4] = mtu >> 24;
	icmp[5] = (mtu >> 16) & 0xff;
	icmp[6] = (mtu >> 8) & 0xff;
	icmp[7] = mtu & 0xff;
	/* The pseudo-header (both addresses, the length, the next header)
	 * and the 56-byte message. */
	__u32 sum = 56 + NEXTHDR_ICMPV6;
	for (int i = 8; i < 40; i += 2)
		sum += ((__u32)nip[i] << 8) | nip[i + 1];
	for (int i = 0; i < 56; i += 2)
		sum += ((__u32)icmp[i] << 8) | icmp[i + 1];
	__u16 c = ~csum_fold32(sum);
	icmp[2] = c >> 8;
	icmp[3] = c & 0xff;
	return XDP_TX;
}

/* Change `n` bytes (2 or 4) at `at` to `to`, adding the difference to the
 * checksum accumulators `a` and (when not NULL) `b`. */
static __always_inline void icmp_patch(__u8 *at, const __u8 *to, int n, __u32 *a, __u32 *b)
{
	__u32 d = n == 4 ? csum_delta(at, to, 4) : csum_delta(at, to, 2);
	*a += d;
	if (b)
		*b += d;
	__builtin_memcpy(at, to, n == 4 ? 4 : 2);
}

/* An IPv4 ICMP error (unreachable, time exceeded, parameter problem)
 * quoting a packet of a flow: to the flow's real server when the quoted
 * packet went from the virtual address to the client (NAT: the quote and
 * the destination rewritten to the real server), to the client when it
 * went from the director to a NAT real server (the quote and the source
 * rewritten to the virtual address). Otherwise the kernel's. */
static __attribute__((noinline)) int icmp4_error(struct xdp_md *ctx, struct pkt *p)
{
	void *end = (void *)(long)ctx->data_end;
	__u8 *ip = p->ip;
	__u8 *icmp = p->l4;
	if ((void *)(ip + 20) > end || (void *)(icmp + 8 + 20) > end)
		return -1;
	if (icmp[0] != 3 && icmp[0] != 11 && icmp[0] != 12)
		return -1;
	__u8 *eip = icmp + 8;
	__u32 eihl = (eip[0] & 0x0f) * 4;
	if ((eip[0] >> 4) != 4 || eihl < 20 || eihl > 60)
		return -1;
	__u8 eproto = eip[9];
	if (eproto != IPPROTO_TCP && eproto != IPPROTO_UDP && eproto != IPPROTO_SCTP)
		return -1;
	__u8 *el4 = eip + eihl;
	if ((void *)(el4 + 8) > end)
		return -1;
	/* The flow, if the quoted packet is a reply to a client. */
	struct flow_key k = {};
	__builtin_memcpy(k.saddr, eip + 16, 4);
	__builtin_memcpy(k.daddr, eip + 12, 4);
	__builtin_memcpy(&k.sport, el4 + 2, 2);
	__builtin_memcpy(&k.dport, el4, 2);
	k.proto = eproto;
	k.family = 4;
	struct flow *f = flow_get(&k);
	if (f && f->expires > p->now) {
		__u32 slot = f->dest;
		struct dest *d = bpf_map_lookup_elem(&dests, &slot);
		if (!d || d->family != 4)
			return -1;
		p->route = d->fwd == FWD_MASQ;
		if (d->fwd == FWD_MASQ) {
			__u32 icsum = 0, ecsum = 0, ocsum = 0;
			__u8 port[2];
			__be16 rport = d->port ? d->port : k.dport;
			__builtin_memcpy(port, &rport, 2);
			icmp_patch(eip + 12, d->addr, 4, &icsum, &ecsum);
			icmp_patch(el4, port, 2, &icsum, 0);
			__u8 old[2] = {eip[10], eip[11]};
			csum_apply(eip + 10, ecsum, 0);
			icsum += csum_delta(old, eip + 10, 2);
			csum_apply(icmp + 2, icsum, 0);
			icmp_patch(ip + 16, d->addr, 4, &ocsum, 0);
			csum_apply(ip + 10, ocsum, 0);
			p->icmp_to = slot;
			return 0;
		}
		p->icmp_to = slot;
		return 0;
	}
	/* The quoted packet went to a NAT real server: back to its client. */
	struct flow_key b = {};
	__builtin_memcpy(b.saddr, eip + 16, 4);
	__builtin_memcpy(b.daddr, eip + 12, 4);
	__builtin_memcpy(&b.sport, el4 + 2, 2);
	__builtin_memcpy(&b.dport, el4, 2);
	b.proto = eproto;
	b.family = 4;
	__u8 vaddr[16] = {};
	__be16 vp = 0;
	struct flow *bf = reply_get(&b, vaddr, &vp);
	if (!bf || bf->expires <= p->now)
		return -1;
	__u32 icsum = 0, ecsum = 0, ocsum = 0;
	__u8 vport[2];
	__builtin_memcpy(vport, &vp, 2);
	icmp_patch(eip + 16, vaddr, 4, &icsum, &ecsum);
	icmp_patch(el4 + 2, vport, 2, &icsum, 0);
	__u8 old[2] = {eip[10], eip[11]};
	csum_apply(eip + 10, ecsum, 0);
	icsum += csum_delta(old, eip + 10, 2);
	csum_apply(icmp + 2, icsum, 0);
	icmp_patch(ip + 12, vaddr, 4, &ocsum, 0);
	csum_apply(ip + 10, ocsum, 0);
	p->route = 1;
	p->icmp_to = (__u32)-1;
	return 0;
}

/* bpf_csum_diff of 16 bytes (an IPv6 address), as the big-endian 16-bit
 * sum the rest of this file adds: the helper sums in host order (little
 * endian), which is the same ones' complement sum with its bytes swapped. */
static __always_inline __u32 addr_delta16(const __u8 *from, const __u8 *to)
{
	__u64 s = (__u32)bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ((s & 0xff) << 8) | ((s >> 8) & 0xff);
}

/* A checksum difference summed in 64 bits, brought down to what
 * csum_apply adds (at most 17 bits). */
static __always_inline __u32 fold_delta(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u32)s;
}

/* The same for ICMPv6 (unreachable, packet too big, time exceeded,
 * parameter problem), whose checksum also covers the outer addresses. */
static __attribute__((noinline)) int icmp6_error(struct xdp_md *ctx, struct pkt *p)
{
	void *end = (void *)(long)ctx->data_end;
	__u8 *ip = p->ip;
	__u8 *icmp = p->l4;
	if ((void *)(ip + 40) > end || (void *)(icmp + 8 + 40 + 8) > end)
		return -1;
	if (icmp[0] < 1 || icmp[0] > 4)
		return -1;
	__u8 *eip = icmp + 8;
	if ((eip[0] >> 4) != 6)
		return -1;
	__u8 eproto = eip[6];
	if (eproto != IPPROTO_TCP && eproto != IPPROTO_UDP && eproto != IPPROTO_SCTP)
		return -1;
	__u8 *el4 = eip + 40;
	struct flow_key k = {};
	__builtin_memcpy(k.saddr, eip + 24, 16);
	__builtin_memcpy(k.daddr, eip + 8, 16);
	__builtin_memcpy(&k.sport, el4 + 2, 2);
	__builtin_memcpy(&k.dport, el4, 2);
	k.proto = eproto;
	k.family = 6;
	__u64 acc = 0;
	struct flow *f = flow_get(&k);
	if (f && f->expires > p->now) {
		__u32 slot = f->dest;
		struct dest *d = bpf_map_lookup_elem(&dests, &slot);
		if (!d || d->family != 6)
			return -1;
		p->route = d->fwd == FWD_MASQ;
		p->icmp_to = slot;
		if (d->fwd != FWD_MASQ)
			return 0;
		__u8 port[2];
		__be16 rport = d->port ? d->port : k.dport;
		__builtin_memcpy(port, &rport, 2);
		acc += addr_delta16(eip + 8, d->addr);
		__builtin_memcpy(eip + 8, d->addr, 16);
		acc += csum_delta(el4, port, 2);
		__builtin_memcpy(el4, port, 2);
		/* The pseudo-header's destination changes too. */
		acc += addr_delta16(ip + 24, d->addr);
		__builtin_memcpy(ip + 24, d->addr, 16);
		csum_apply(icmp + 2, fold_delta(acc), 0);
		return 0;
	}
	struct flow_key b = {};
	__builtin_memcpy(b.saddr, eip + 24, 16);
	__builtin_memcpy(b.daddr, eip + 8, 16);
	__builtin_memcpy(&b.sport, el4 + 2, 2);
	__builtin_memcpy(&b.dport, el4, 2);
	b.proto = eproto;
	b.family = 6;
	__u8 vaddr[16] = {};
	__be16 vp = 0;
	struct flow *bf = reply_get(&b, vaddr, &vp);
	if (!bf || bf->expires <= p->now)
		return -1;
	__u8 vport[2];
	__builtin_memcpy(vport, &vp, 2);
	acc += addr_delta16(eip + 24, vaddr);
	__builtin_memcpy(eip + 24, vaddr, 16);
	acc += csum_delta(el4 + 2, vport, 2);
	__builtin_memcpy(el4 + 2, vport, 2);
	acc += addr_delta16(ip + 8, vaddr);
	__builtin_memcpy(ip + 8, vaddr, 16);
	csum_apply(icmp + 2, fold_delta(acc), 0);
	p->route = 1;
	p->icmp_to = (__u32)-1;
	return 0;
}

SEC("xdp")
int fulcrum_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct flow_key key = {};
	struct pkt p = {};
	__u8 *l4;
	__u8 proto;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(EXC_MALFORMED, XDP_PASS);
	__be16 type = eth->h_proto;
	void *l3 = eth + 1;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *v = l3;
		if ((void *)(v + 1) > end)
			return count(EXC_MALFORMED, XDP_PASS);
		type = v->proto;
		l3 = v + 1;
	}

	if (type == bpf_htons(ETH_P_IP)) {
		__u8 *ip = l3;
		if ((void *)(ip + 20) > end)
			return count(EXC_MALFORMED, XDP_PASS);
		__u8 ihl = (ip[0] & 0x0f) * 4;
		if ((ip[0] >> 4) != 4 || ihl < 20)
			return count(EXC_MALFORMED, XDP_PASS);
		/* More fragments, or an offset: not the whole datagram. */
		if (((ip[6] << 8) | ip[7]) & 0x3fff)
			return count(EXC_FRAGMENT, XDP_PASS);
		proto = ip[9];
		key.family = 4;
		__builtin_memcpy(key.saddr, ip + 12, 4);
		__builtin_memcpy(key.daddr, ip + 16, 4);
		p.l3_len = (ip[2] << 8) | ip[3];
		l4 = ip + ihl;
		if ((void *)l4 > end)
			return count(EXC_MALFORMED, XDP_PASS);
		p.ip = ip;
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = l3;
		if ((void *)(ip6 + 40) > end)
			return count(EXC_MALFORMED, XDP_PASS);
		if ((ip6[0] >> 4) != 6)
			return count(EXC_MALFORMED, XDP_PASS);
		proto = ip6[6];
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP &&
		    proto != NEXTHDR_ICMPV6 && proto != NEXTHDR_NONE)
			return count(EXC_IPV6_EXT, XDP_PASS);
		key.family = 6;
		__builtin_memcpy(key.saddr, ip6 + 8, 16);
		__builtin_memcpy(key.daddr, ip6 + 24, 16);
		p.l3_len = 40 + ((ip6[4] << 8) | ip6[5]);
		l4 = ip6 + 40;
		p.ip = ip6;
	} else {
		return count(EXC_NOT_IP, XDP_PASS);
	}

	if ((proto == IPPROTO_ICMP && key.family == 4) ||
	    (proto == NEXTHDR_ICMPV6 && key.family == 6)) {
		p.l3 = l3;
		p.l4 = l4;
		p.family = key.family;
		p.proto = proto;
		p.now = now_ns();
		int r = key.family == 4 ? icmp4_error(ctx, &p) : icmp6_error(ctx, &p);
		if (r == 0) {
			count(EXC_ICMP_FWD, 0);
			if (p.icmp_to == (__u32)-1) {
				/* To the client: the packet's own destination. */
				if ((void *)(p.ip + 40) > end)
					return XDP_PASS;
				return forward(ctx, &p, key.family == 4 ? p.ip + 16 : p.ip + 24, NULL);
			}
			__u32 slot = p.icmp_to;
			struct dest *d = bpf_map_lookup_elem(&dests, &slot);
			if (!d)
				return XDP_PASS;
			if (d->fwd == FWD_TUNNEL) {
				int v = encap(ctx, &p, d);
				return v == TOO_BIG6 ? XDP_DROP : v;
			}
			return forward(ctx, &p, d->addr, bpf_map_lookup_elem(&dest_nh, &slot));
		}
		return count(EXC_OTHER_L4, XDP_PASS);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return count(EXC_OTHER_L4, XDP_PASS);
	/* The whole transport header must be there, as IPVS requires it;
	 * source and destination ports lead all three. */
	__u32 l4_len = proto == IPPROTO_TCP ? 20 : proto == IPPROTO_UDP ? 8 : 12;
	if ((void *)(l4 + l4_len) > end)
		return count(EXC_MALFORMED, XDP_PASS);
	key.proto = proto;
	__builtin_memcpy(&key.sport, l4, 2);
	__builtin_memcpy(&key.dport, l4 + 2, 2);
	p.l3 = l3;
	p.l4 = l4;
	p.family = key.family;
	p.proto = proto;
	if (proto == IPPROTO_TCP) {
		p.tflags = l4[13];
		p.csum = l4 + 16;
	} else if (proto == IPPROTO_UDP) {
		p.csum = l4 + 6;
		p.udp = key.family == 4;
	} else if ((void *)(l4 + 13) <= end) {
		/* SCTP: its CRC covers no IP address; the first chunk's type
		 * drives the state. */
		p.tflags = l4[12];
	}
	__u64 now = now_ns();
	p.now = now;

	/* A client's packet of a known flow — unless it opens a new
	 * connection on the ports of one that has ended (IPVS's default
	 * conn_reuse_mode 1, ip_vs_in: a SYN, or SCTP's INIT, meeting a
	 * TIME_WAIT or CLOSE entry no persistence template controls), which is
	 * scheduled anew below as the kernel does. */
	struct flow *f = flow_get(&key);
	if (f && f->expires > now && !ended_flow_reused(f, proto, p.tflags))
		return to_real_server(ctx, &p, &key, f, now, 0);

	/* A real server's reply of a NAT flow. */
	if (reply_of_nat(ctx, &p, &key) == 0)
		return forward(ctx, &p, key.daddr, NULL);

	/* A new connection to a virtual service? */
	struct svc_key sk = {};
	sk.family = key.family;
	sk.proto = proto;
	sk.port = key.dport;
	__builtin_memcpy(sk.addr, key.daddr, 16);
	__u32 *id = bpf_map_lookup_elem(&services, &sk);
	if (!id) {
		/* A persistent service of port zero takes every port. */
		sk.port = 0;
		id = bpf_map_lookup_elem(&services, &sk);
	}
	if (!id)
		return count(EXC_NO_SERVICE, XDP_PASS);
	__u32 svc_idx = *id;
	if (proto == IPPROTO_TCP && (!(p.tflags & 0x02) || (p.tflags & 0x04)))
		return count(EXC_NOT_SYN, XDP_PASS);
	/* SCTP associations begin with INIT. */
	if (proto == IPPROTO_SCTP && p.tflags != 1)
		return count(EXC_NOT_SYN, XDP_PASS);
	struct svc *sv = bpf_map_lookup_elem(&svc_conf, &svc_idx);
	if (!sv)
		return count(EXC_NO_SERVICE, XDP_PASS);

	if (f) {
		/* An expired flow the sweeper has not reached: let it go first. */
		unbind_dest(f->dest, f->flags & FLOW_INACTIVE);
		flow_del(&key);
	}
	__s64 slot;
	if (sv->persist) {
		slot = persist_pick(sv, svc_idx, &key, now);
	} else {
		__s32 i = fulcrum_schedule(svc_idx, &key, now);
		slot = i < 0 ? -1 : (__s64)sv->slots[i & SVC_DEST_MASK];
	}
	if (slot < 0)
		return count(EXC_NO_DEST, XDP_PASS);
	struct flow nf = {};
	nf.dest = slot;
	nf.svc = svc_idx;
	nf.state = proto == IPPROTO_UDP ? ST_UDP : ST_NONE;
	nf.flags = FLOW_INACTIVE;
	nf.expires = now + timeout_ns(nf.state);
	bind_dest(nf.dest);
	f = flow_new(&key, &nf);
	if (!f) {
		unbind_dest(nf.dest, 1);
		return count(EXC_NO_DEST, XDP_PASS);
	}
	return to_real_server(ctx, &p, &key, f, now, 1);
}

/* ---- Synced flows: installed by the controller (BPF_PROG_TEST_RUN) ----
 *
 * A backup director learns the active one's connections from its sync
 * messages. The controller writes them, mapped to this program's service
 * indexes and real-server slots, into `sync_in` and runs `fulcrum_install`
 * with their count as the frame's first four bytes: this program stays
 * the only writer of the flow table and of the counts. A flow already here
 * is brought to the message's real server, state and timeout (its counts
 * moved); a new one is bound as the packet path binds; a template is
 * created or refreshed. */
struct sync_rec {
	__u8 caddr[16];  /* templates: the client network */
	__u8 vaddr[16];
	__be16 cport;
	__be16 vport;
	__u8 proto;
	__u8 family;
	__u8 state;      /* fulcrum-core's ConnState */
	__u8 flags;      /* SYNC_F_* */
	__u32 dest;      /* slot */
	__u32 svc;       /* service index */
	__u32 timeout;   /* seconds */
	__u32 pad[3];
};

#define SYNC_F_TEMPLATE 0x1
#define SYNC_MAX 256

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYNC_MAX);
	__type(key, __u32);
	__type(value, struct sync_rec);
} sync_in SEC(".maps");

/* What the last install run did: [flows added, flows updated, templates]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} sync_result SEC(".maps");

struct install_ctx {
	__u64 now;
	__u32 count;
	__u32 pad;
	__u64 added;
	__u64 updated;
	__u64 templates;
};

static __always_inline void install_template(const struct sync_rec *r, struct install_ctx *c)
{
	__u32 room = 1; /* the sweeper's room: the controller runs both */
	struct tmpl_key *t = bpf_map_lookup_elem(&scratch, &room);
	if (!t)
		return;
	__builtin_memcpy(t->snet, r->caddr, 16);
	__builtin_memcpy(t->vaddr, r->vaddr, 16);
	t->svc = r->svc;
	t->vport = r->vport;
	t->proto = r->proto;
	t->pad = 0;
	__u64 expires = c->now + (__u64)r->timeout * NSEC;
	struct tmpl *old = bpf_map_lookup_elem(&templates, t);
	if (old) {
		if (old->dest != r->dest) {
			unbind_template(old->dest);
			bind_template(r->dest);
			old->dest = r->dest;
		}
		if (old->expires < expires)
			old->expires = expires;
	} else {
		struct tmpl nt = {};
		nt.expires = expires;
		nt.dest = r->dest;
		if (bpf_map_update_elem(&templates, t, &nt, BPF_NOEXIST))
			return;
		bind_template(r->dest);
	}
	c->templates++;
}

static long install_one(__u32 i, void *ctx)
{
	struct install_ctx *c = ctx;
	if (i >= c->count)
		return 1;
	struct sync_rec *r = bpf_map_lookup_elem(&sync_in, &i);
	if (!r)
		return 1;
	if (r->flags & SYNC_F_TEMPLATE) {
		install_template(r, c);
		return 0;
	}
	struct flow_key k = {};
	__builtin_memcpy(k.saddr, r->caddr, 16);
	__builtin_memcpy(k.daddr, r->vaddr, 16);
	k.sport = r->cport;
	k.dport = r->vport;
	k.proto = r->proto;
	k.family = r->family == 6 ? 6 : 4;
	/* No timeout (a version-0 message): the state's own. */
	__u64 expires = c->now + (r->timeout ? (__u64)r->timeout * NSEC : timeout_ns(r->state));
	struct flow *f = flow_get(&k);
	if (f && f->expires > c->now) {
		if (f->dest != r->dest) {
			unbind_dest(f->dest, f->flags & FLOW_INACTIVE);
			bind_dest(r->dest);
			f->dest = r->dest;
			f->svc = r->svc;
			f->flags |= FLOW_INACTIVE;
			f->expires = 0; /* set_state below moves the counts */
		}
		c->updated++;
	} else {
		if (f) {
			unbind_dest(f->dest, f->flags & FLOW_INACTIVE);
			flow_del(&k);
		}
		struct flow nf = {};
		nf.dest = r->dest;
		nf.svc = r->svc;
		nf.state = ST_NONE;
		nf.flags = FLOW_INACTIVE;
		bind_dest(nf.dest);
		f = flow_new(&k, &nf);
		if (!f) {
			unbind_dest(nf.dest, 1);
			return 0;
		}
		c->added++;
	}
	set_state(f, r->state, c->now);
	f->expires = expires;
	return 0;
}

/* The controller's programs (the installer, the sweeper) are of the tc
 * type, though never attached: BPF_PROG_TEST_RUN of an XDP program swaps
 * it into the kernel's XDP dispatcher and out again, an RCU grace period
 * (milliseconds) each time, which a tc program's run does not cost. */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

SEC("classifier")
int fulcrum_install(struct __sk_buff *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct install_ctx c = {};
	if (data + 4 > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(&c.count, data, 4);
	if (c.count > SYNC_MAX)
		c.count = SYNC_MAX;
	c.now = now_ns();
	bpf_loop(SYNC_MAX, install_one, &c, 0);
	__u32 k = 0;
	bpf_map_update_elem(&sync_result, &k, &c.added, BPF_ANY);
	k = 1;
	bpf_map_update_elem(&sync_result, &k, &c.updated, BPF_ANY);
	k = 2;
	bpf_map_update_elem(&sync_result, &k, &c.templates, BPF_ANY);
	return TC_ACT_OK;
}

/* ---- The sweeper: run by the controller (BPF_PROG_TEST_RUN), once a second ---- */

struct sweep_ctx {
	__u64 now;
	__u64 seen;
	__u64 expired;
};

/* A flow the sweeper reached: 1 when it expired (its counts taken off),
 * else 0 (a live flow of a persistent service keeps its template). */
static __always_inline int sweep_one(struct flow_key *k, struct flow *f, struct sweep_ctx *s)
{
	s->seen++;
	if (f->expires > s->now) {
		__u32 si = f->svc;
		struct svc *sv = bpf_map_lookup_elem(&svc_conf, &si);
		if (sv && sv->persist) {
			struct tmpl_key *tk = tmpl_key_of(1, sv, si, k);
			struct tmpl *t = tk ? bpf_map_lookup_elem(&templates, tk) : 0;
			if (t && t->expires < f->expires)
				t->expires = f->expires;
		}
		return 0;
	}
	unbind_dest(f->dest, f->flags & FLOW_INACTIVE);
	s->expired++;
	return 1;
}

/* The tables, one bucket a step: an expired flow's slot is freed. */
static __always_inline void sweep_slot4(struct slot4 *sl, struct sweep_ctx *s)
{
	if (sl->kind != KIND_FLOW)
		return;
	struct flow_key k = {};
	__builtin_memcpy(k.saddr, &sl->saddr, 4);
	__builtin_memcpy(k.daddr, &sl->daddr, 4);
	k.sport = sl->sport;
	k.dport = sl->dport;
	k.proto = sl->proto;
	k.family = 4;
	if (sweep_one(&k, &sl->f, s))
		sl->kind = 0;
}

static __always_inline void sweep_slot6(struct slot6 *sl, struct sweep_ctx *s)
{
	if (sl->kind != KIND_FLOW)
		return;
	struct flow_key k = {};
	__builtin_memcpy(k.saddr, sl->saddr, 16);
	__builtin_memcpy(k.daddr, sl->daddr, 16);
	k.sport = sl->sport;
	k.dport = sl->dport;
	k.proto = sl->proto;
	k.family = 6;
	if (sweep_one(&k, &sl->f, s))
		sl->kind = 0;
}

/* One bucket of a table a step of bpf_loop. */
#define SWEEP_BUCKET(name, table, type, sweep_slot)                                              \
	static long name(__u32 i, void *ctx)                                                     \
	{                                                                                        \
		type *b = bpf_map_lookup_elem(&table, &i);                                        \
		if (!b)                                                                          \
			return 1;                                                                \
		sweep_slot(&b->s[0], ctx);                                                       \
		sweep_slot(&b->s[1], ctx);                                                       \
		sweep_slot(&b->s[2], ctx);                                                       \
		sweep_slot(&b->s[3], ctx);                                                       \
		return 0;                                                                        \
	}

SWEEP_BUCKET(sweep_bucket4, ftab4, struct bucket4, sweep_slot4)
SWEEP_BUCKET(sweep_bucket6, ftab6, struct bucket6, sweep_slot6)

static long sweep_template(void *map, struct tmpl_key *k, struct tmpl *t, struct sweep_ctx *s)
{
	if (t->expires > s->now)
		return 0;
	unbind_template(t->dest);
	bpf_map_delete_elem(map, k);
	return 0;
}

SEC("classifier")
int fulcrum_sweep(struct __sk_buff *ctx)
{
	struct sweep_ctx s = {};
	s.now = now_ns();
	bpf_loop(ftab4_mask + 1, sweep_bucket4, &s, 0);
	bpf_loop(ftab6_mask + 1, sweep_bucket6, &s, 0);
	bpf_for_each_map_elem(&templates, sweep_template, &s, 0);
	__u32 k = 0;
	bpf_map_update_elem(&sweep_result, &k, &s.seen, BPF_ANY);
	k = 1;
	bpf_map_update_elem(&sweep_result, &k, &s.expired, BPF_ANY);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
