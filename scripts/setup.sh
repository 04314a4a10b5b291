#!/usr/bin/env bash
# Installs what afxdp_rs needs on a Debian or Ubuntu machine and builds it into .venv.
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (sudo): it installs system packages, and AF_XDP needs root" >&2
    exit 2
fi

# iputils-ping, ethtool and iperf3: the real-traffic tests and benchmarks put a kernel
# stack on both ends. tshark (with editcap): the command-line tests read and write pcapng
# with Wireshark's tools. libxdp-dev: `cargo bench --bench rings` compiles the same ring loop
# over libxdp's inline ring functions (xdp/xsk.h) to compare side by side.
packages=(clang llvm libelf-dev zlib1g-dev pkg-config linux-libc-dev iproute2 python3-venv tcpdump tshark patchelf valgrind util-linux bpftool iputils-ping ethtool iperf3 libxdp-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "setup.sh: Rust 1.82 or newer is needed (cargo, rustc): install it with rustup" >&2
    exit 1
fi
if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check \
    "maturin>=1.7,<2" pytest pyroute2 ruff mypy typing_extensions uvloop click rich pdoc hypothesis numpy
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release -q

# The QEMU guest of the vhost-user tests: QEMU itself, and a kernel and initramfs in
# target/guest (downloaded and built once; a no-op when up to date).
scripts/guest-image
# The kernels of the guest test tier (tests/test_guest_tier.py): Debian's own packages
# of 6.1, 6.12 and 6.18 (5.10 too: scripts/guest-kernels 5.10), unpacked into
# target/guest-tier, and virtme-ng (once).
scripts/guest-kernels 6.1 6.12 6.18
