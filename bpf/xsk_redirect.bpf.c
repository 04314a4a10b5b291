// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The default afxdp_rs XDP program.
 *
 * Every packet that arrives on an rx queue is redirected to the AF_XDP socket that
 * user space registered for that queue in `xsks_map` (key: queue index, value: socket
 * fd). When no socket is registered for the queue, the lookup fails and the packet
 * continues up the normal kernel stack (XDP_PASS), so attaching the program never
 * blackholes traffic on queues nobody listens to.
 *
 * Flow steering: a socket may ask for only some of its queue's packets. Its rules are
 * in `rules_map` under its queue: the packet goes to the socket when any rule matches
 * (a rule matches when all of its fields do); everything else goes to the kernel
 * stack untouched. No entry, or an entry without rules: every packet of the queue.
 * Rules change while the program runs: an update replaces a queue's whole entry at
 * once (a hash map element), so a packet sees the old rules or the new ones.
 *
 * A socket may also ask for the time each packet reached XDP: it is put in the
 * packet's metadata (AFXDP_STAMP).
 *
 * The program handles multi-buffer packets ("xdp.frags"): jumbo frames, on a veth or
 * any driver, reach sockets bound with XDP_USE_SG. The headers it reads are in the
 * first buffer.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Sized for the largest multi-queue NICs; an entry per rx queue. */
#define AFXDP_MAX_QUEUES 256
#define AFXDP_MAX_RULES 16

/* Which fields of a rule must match (rule.fields). */
#define F_ETHERTYPE (1 << 0) /* ethertype after any VLAN tags */
#define F_VLAN (1 << 1)      /* the frame carries a VLAN tag */
#define F_VLAN_ID (1 << 2)   /* ...whose outer VLAN id is rule.vlan */
#define F_PROTO (1 << 3)     /* IP protocol or IPv6 next header */
#define F_SRC (1 << 4)       /* source address under src_mask */
#define F_DST (1 << 5)       /* destination address under dst_mask */
#define F_SPORT (1 << 6)     /* TCP, UDP or SCTP source port */
#define F_DPORT (1 << 7)     /* ...destination port */

/* Mirrored by rust/src/steer (the Rust Rule type): same layout. */
struct afxdp_rule {
	__u32 fields;
	__be16 ethertype;
	__u16 vlan;
	__u8 proto;
	__u8 pad[3];
	__be16 sport;
	__be16 dport;
	__u32 src[4];
	__u32 src_mask[4];
	__u32 dst[4];
	__u32 dst_mask[4];
};

/* afxdp_rules.flags: put the time the packet reached XDP (bpf_ktime_get_ns,
 * CLOCK_MONOTONIC, 8 bytes) in its metadata, right before the packet. */
#define AFXDP_STAMP (1 << 0)

struct afxdp_rules {
	__u32 count;
	__u32 flags;
	struct afxdp_rule rule[AFXDP_MAX_RULES];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AFXDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AFXDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct afxdp_rules);
} rules_map SEC(".maps");

/* What the rules look at in a packet. */
struct flow {
	__be16 ethertype;
	__u16 vlan;
	__u8 tagged;
	__u8 proto;
	__u8 has_ports;
	__be16 sport;
	__be16 dport;
	__u32 src[4];
	__u32 dst[4];
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ip4 {
	__u8 ihl_version;
	__u8 tos;
	__be16 len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__be16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ip6 {
	__be32 flow;
	__be16 len;
	__u8 nexthdr;
	__u8 hop;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* Reads the flow's fields from the first buffer; a packet too short for what its
 * headers announce keeps those fields unset (it then matches only rules without
 * them). */
static __always_inline void parse(struct xdp_md *ctx, struct flow *f)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *at;

	if ((void *)(eth + 1) > end)
		return;
	f->ethertype = eth->h_proto;
	at = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *v = at;

		if (f->ethertype != bpf_htons(ETH_P_8021Q) && f->ethertype != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(v + 1) > end)
			return;
		if (!f->tagged)
			f->vlan = bpf_ntohs(v->tci) & 0x0fff;
		f->tagged = 1;
		f->ethertype = v->proto;
		at = v + 1;
	}
	if (f->ethertype == bpf_htons(ETH_P_IP)) {
		struct ip4 *ip = at;

		if ((void *)(ip + 1) > end)
			return;
		f->proto = ip->proto;
		f->src[0] = ip->saddr;
		f->dst[0] = ip->daddr;
		/* Ports only in the first fragment. */
		if (ip->frag & bpf_htons(0x1fff))
			return;
		at = (void *)ip + (ip->ihl_version & 0x0f) * 4;
	} else if (f->ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ip6 *ip = at;

		if ((void *)(ip + 1) > end)
			return;
		f->proto = ip->nexthdr;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			f->src[i] = ip->saddr[i];
			f->dst[i] = ip->daddr[i];
		}
		at = ip + 1;
	} else {
		return;
	}
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP) {
		__be16 *ports = at;

		if ((void *)(ports + 2) > end)
			return;
		f->sport = ports[0];
		f->dport = ports[1];
		f->has_ports = 1;
	}
}

static __always_inline int addr_matches(const __u32 *have, const __u32 *want, const __u32 *mask)
{
	return ((have[0] & mask[0]) == want[0]) && ((have[1] & mask[1]) == want[1]) &&
	       ((have[2] & mask[2]) == want[2]) && ((have[3] & mask[3]) == want[3]);
}

/*
 * A global function: the verifier checks it once, on its own, instead of once per
 * iteration of the rules loop and per path into it (with it inlined, loading the
 * program took 20 times the verifier's work, which every socket open pays).
 *
 * AFXDP_COMPAT builds the same program for kernels before 5.18 (the library loads it
 * when the kernel refuses this one): there a global function cannot take pointers
 * (5.12+), so it is a static one, and the program is not marked for multi-buffer
 * packets (xdp.frags, 5.18+), which those kernels do not deliver to AF_XDP anyway.
 */
#ifdef AFXDP_COMPAT
#define RULES_FN static __attribute__((noinline))
#define XDP_SECTION "xdp"
#else
#define RULES_FN __attribute__((noinline))
#define XDP_SECTION "xdp.frags"
#endif
RULES_FN int rule_matches(const struct afxdp_rule *r, const struct flow *f)
{
	if (!r || !f)
		return 0;
	__u32 fl = r->fields;

	if ((fl & F_ETHERTYPE) && f->ethertype != r->ethertype)
		return 0;
	if ((fl & F_VLAN) && !f->tagged)
		return 0;
	if ((fl & F_VLAN_ID) && (!f->tagged || f->vlan != r->vlan))
		return 0;
	if ((fl & F_PROTO) && f->proto != r->proto)
		return 0;
	if ((fl & F_SRC) && !addr_matches(f->src, r->src, r->src_mask))
		return 0;
	if ((fl & F_DST) && !addr_matches(f->dst, r->dst, r->dst_mask))
		return 0;
	if ((fl & F_SPORT) && (!f->has_ports || f->sport != r->sport))
		return 0;
	if ((fl & F_DPORT) && (!f->has_ports || f->dport != r->dport))
		return 0;
	return 1;
}

SEC(XDP_SECTION)
int afxdp_redir_v2(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	struct afxdp_rules *rules = bpf_map_lookup_elem(&rules_map, &queue);

	if (rules && rules->count) {
		struct flow f = {};
		int hit = 0;

		parse(ctx, &f);
		for (__u32 i = 0; i < AFXDP_MAX_RULES; i++) {
			if (i >= rules->count)
				break;
			if (rule_matches(&rules->rule[i], &f)) {
				hit = 1;
				break;
			}
		}
		if (!hit)
			return XDP_PASS;
	}
	if (rules && (rules->flags & AFXDP_STAMP) && bpf_xdp_adjust_meta(ctx, -8) == 0) {
		__u64 *meta = (void *)(long)ctx->data_meta;

		if ((void *)(meta + 1) <= (void *)(long)ctx->data)
			*meta = bpf_ktime_get_ns();
	}
	/*
	 * The low bits of the flags argument are the action returned when the map has no
	 * socket at this index (kernel 5.3 and later).
	 */
	return bpf_redirect_map(&xsks_map, queue, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
