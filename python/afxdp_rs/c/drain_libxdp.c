/*
 * The C side of `afxdp bench drain --compare`: the same drain as the Python API's, over
 * libxdp's inline ring functions (xdp/xsk.h), on an AF_XDP socket of its own on
 * another rx queue of the same test bed, so that both sides meet the same kernel and
 * the same packets, in alternating turns.
 *
 *   drain_libxdp IFNAME QUEUE XSKS_MAP_FD FRAMES BATCH
 *
 * The socket binds in copy mode with need_wakeup and puts itself in the XSKMAP whose
 * descriptor it inherited (afxdp_rs's program steers the queue to it; libxdp loads no
 * program). Then it reads commands on standard input, one per line:
 *
 *   drain   empty the rx ring BATCH descriptors at a time: peek, put each frame back
 *           on the fill ring, release (descriptors only)
 *   field   the same, also reading two bytes of each packet (the UDP destination port
 *           of an untagged IPv4 packet, offset 36) into a histogram
 *
 * and answers each with one line: "PACKETS NANOSECONDS" (only the emptying is timed;
 * the wakeup the fill ring may ask for comes after).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#define FRAME_SIZE 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint32_t histogram[65536];

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s IFNAME QUEUE XSKS_MAP_FD FRAMES BATCH\n", argv[0]);
		return 2;
	}
	const char *ifname = argv[1];
	uint32_t queue = strtoul(argv[2], NULL, 10);
	int map_fd = atoi(argv[3]);
	uint32_t frames = strtoul(argv[4], NULL, 10);
	uint32_t batch = strtoul(argv[5], NULL, 10);
	size_t size = (size_t)frames * FRAME_SIZE;
	void *area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (area == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_umem_config ucfg = {
		.fill_size = frames,
		.comp_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.frame_size = FRAME_SIZE,
		.frame_headroom = 0,
	};
	int err = xsk_umem__create(&umem, area, size, &fill, &comp, &ucfg);
	if (err) {
		fprintf(stderr, "xsk_umem__create: %s\n", strerror(-err));
		return 1;
	}
	struct xsk_socket *xsk;
	struct xsk_socket_config scfg = {
		.rx_size = frames,
		.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	err = xsk_socket__create(&xsk, ifname, queue, umem, &rx, &tx, &scfg);
	if (err) {
		fprintf(stderr, "xsk_socket__create on %s queue %u: %s\n", ifname, queue, strerror(-err));
		return 1;
	}
	int fd = xsk_socket__fd(xsk);
	if (bpf_map_update_elem(map_fd, &queue, &fd, 0)) {
		perror("putting the socket in the XSKMAP");
		return 1;
	}
	uint32_t idx;
	if (xsk_ring_prod__reserve(&fill, frames, &idx) != frames) {
		fprintf(stderr, "the fill ring did not take %u frames\n", frames);
		return 1;
	}
	for (uint32_t i = 0; i < frames; i++)
		*xsk_ring_prod__fill_addr(&fill, idx + i) = (uint64_t)i * FRAME_SIZE;
	xsk_ring_prod__submit(&fill, frames);
	printf("ready\n");
	fflush(stdout);

	char line[64];
	while (fgets(line, sizeof(line), stdin)) {
		int field = strncmp(line, "field", 5) == 0;
		uint64_t packets = 0, t0 = now_ns();
		for (;;) {
			uint32_t rx_idx, fill_idx;
			uint32_t n = xsk_ring_cons__peek(&rx, batch, &rx_idx);

			if (!n)
				break;
			while (xsk_ring_prod__reserve(&fill, n, &fill_idx) != n)
				;
			for (uint32_t i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, rx_idx + i);

				if (field) {
					const uint8_t *p = xsk_umem__get_data(area, d->addr);
					uint16_t port;

					memcpy(&port, p + 36, 2);
					histogram[ntohs(port)]++;
				}
				*xsk_ring_prod__fill_addr(&fill, fill_idx + i) = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
			}
			xsk_ring_prod__submit(&fill, n);
			xsk_ring_cons__release(&rx, n);
			packets += n;
		}
		uint64_t dt = now_ns() - t0;
		if (xsk_ring_prod__needs_wakeup(&fill))
			recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		printf("%llu %llu\n", (unsigned long long)packets, (unsigned long long)dt);
		fflush(stdout);
	}
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	return 0;
}
