/* The ring microbenchmark of benches/rings.rs written over libxdp's inline ring
 * functions (xdp/xsk.h: xsk_ring_prod__reserve/submit, xsk_ring_cons__peek/release),
 * for a side-by-side comparison. benches/rings.rs compiles this file into a shared
 * object when the bench runs (cc -O2, the flags a user of libxdp would build with) and
 * calls it; it is no part of the library.
 *
 * The ring is laid out as LocalRing lays out its heap rings, and as the kernel maps
 * them: producer, consumer and flags words each on their own 64-byte cache line, then
 * the array of descriptors. The xsk_ring_prod/xsk_ring_cons structs that
 * xsk_socket__create would fill from XDP_MMAP_OFFSETS are filled by hand. Only the
 * header is needed: every function used here is inline, nothing links against libxdp.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xdp/xsk.h>

#define LINE 64

struct bench_ring {
	void *mem;
	struct xsk_ring_prod tx;
	struct xsk_ring_cons rx;
	__u64 addr;
};

/* A ring of `size` descriptors (a power of two) whose indices start at `start`. */
struct bench_ring *afxdp_libxdp_ring_new(uint32_t size, uint32_t start)
{
	struct bench_ring *b = calloc(1, sizeof(*b));
	size_t bytes = 3 * LINE + (size_t)size * sizeof(struct xdp_desc);
	char *mem;

	if (!b)
		return NULL;
	mem = aligned_alloc(LINE, (bytes + LINE - 1) / LINE * LINE);
	if (!mem) {
		free(b);
		return NULL;
	}
	memset(mem, 0, bytes);
	b->mem = mem;
	*(__u32 *)(mem + 0) = start;    /* producer */
	*(__u32 *)(mem + LINE) = start; /* consumer */

	/* What xsk_socket__create does for the tx ring (a producer ring)... */
	b->tx.mask = size - 1;
	b->tx.size = size;
	b->tx.producer = (__u32 *)(mem + 0);
	b->tx.consumer = (__u32 *)(mem + LINE);
	b->tx.flags = (__u32 *)(mem + 2 * LINE);
	b->tx.ring = mem + 3 * LINE;
	b->tx.cached_prod = *b->tx.producer;
	b->tx.cached_cons = *b->tx.consumer + size;

	/* ...and for the rx ring (a consumer ring), here over the same memory. */
	b->rx.mask = size - 1;
	b->rx.size = size;
	b->rx.producer = (__u32 *)(mem + 0);
	b->rx.consumer = (__u32 *)(mem + LINE);
	b->rx.flags = (__u32 *)(mem + 2 * LINE);
	b->rx.ring = mem + 3 * LINE;
	b->rx.cached_prod = *b->rx.producer;
	b->rx.cached_cons = *b->rx.consumer;
	return b;
}

void afxdp_libxdp_ring_free(struct bench_ring *b)
{
	if (b) {
		free(b->mem);
		free(b);
	}
}

/* What Rust's std::hint::black_box does: the value's address goes to an empty asm
 * statement that may read or write any memory. */
static inline void black_box(__u64 *v)
{
	__asm__ volatile("" : : "r"(v) : "memory");
}

/* One round: reserve `batch` tx slots, write a descriptor into each, submit; peek up
 * to `batch` entries, add up their addresses, release. The same loop as the Rust side
 * of benches/rings.rs. */
static inline __attribute__((always_inline)) void
one_round(struct xsk_ring_prod *tx, struct xsk_ring_cons *rx, __u64 *addr, uint32_t batch)
{
	__u32 idx = 0, n, i;
	__u64 sum = 0;

	n = xsk_ring_prod__reserve(tx, batch, &idx);
	for (i = 0; i < n; i++) {
		struct xdp_desc *d = xsk_ring_prod__tx_desc(tx, idx + i);

		d->addr = *addr;
		d->len = 64;
		d->options = 0;
		*addr += 2048;
	}
	xsk_ring_prod__submit(tx, n);

	n = xsk_ring_cons__peek(rx, batch, &idx);
	for (i = 0; i < n; i++)
		sum += xsk_ring_cons__rx_desc(rx, idx + i)->addr;
	xsk_ring_cons__release(rx, n);
	black_box(&sum);
}

/* `iters` rounds with the ring state (the xsk_ring_prod/xsk_ring_cons structs) copied
 * into local variables, which the compiler keeps in registers: the best case. */
void afxdp_libxdp_ring_run_local(struct bench_ring *b, uint32_t batch, uint64_t iters)
{
	struct xsk_ring_prod tx = b->tx;
	struct xsk_ring_cons rx = b->rx;
	__u64 addr = b->addr;

	for (uint64_t it = 0; it < iters; it++)
		one_round(&tx, &rx, &addr, batch);
	b->tx = tx;
	b->rx = rx;
	b->addr = addr;
}

/* `iters` rounds on the ring state where a program keeps it, in a struct reached
 * through a pointer (as xdpsock's xsk->tx). */
void afxdp_libxdp_ring_run_shared(struct bench_ring *b, uint32_t batch, uint64_t iters)
{
	__u64 addr = b->addr;

	for (uint64_t it = 0; it < iters; it++)
		one_round(&b->tx, &b->rx, &addr, batch);
	b->addr = addr;
}
