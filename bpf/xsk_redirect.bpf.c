// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The default afxdp_rs XDP program.
 *
 * Every packet that arrives on an rx queue is redirected to the AF_XDP socket that
 * user space registered for that queue in `xsks_map` (key: queue index, value: socket
 * fd). When no socket is registered for the queue, the lookup fails and the packet
 * continues up the normal kernel stack (XDP_PASS), so attaching the program never
 * blackholes traffic on queues nobody listens to.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Sized for the largest multi-queue NICs; an entry per rx queue. */
#define AFXDP_MAX_QUEUES 256

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AFXDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int afxdp_redirect(struct xdp_md *ctx)
{
	/*
	 * The low bits of the flags argument are the action returned when the map has no
	 * socket at this index (kernel 5.3 and later).
	 */
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
