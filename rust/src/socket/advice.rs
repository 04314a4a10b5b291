//! What an interface does to packets before a socket sees them, and what fixes it.
//!
//! Offloads that serve the kernel stack make packets arrive at an AF_XDP socket
//! unfinished or oversized: a sender's checksum offload leaves partial checksums (see
//! [`crate::csum`]); segmentation offload on a veth peer and GRO on the device make
//! superpackets of up to 64 KiB, which skb-mode XDP hands over whole and a frame cannot
//! hold; an MTU larger than a frame lets packets arrive that are dropped. When a
//! socket opens, [`inspect`] looks at its interface (and, for a veth, at the peer where
//! it is in the same network namespace) and says, for each condition, what happens and
//! the exact command that fixes it; [`fix`] turns the offending features off.

use super::L2_OVERHEAD;
use crate::sys::{ethtool, netdev};

/// A condition that makes packets arrive unfinished or too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The interface whose setting causes it.
    pub ifname: String,
    /// The ethtool features that [`fix`] turns off (none: nothing to turn off).
    pub features: Vec<&'static str>,
    /// What happens, and the command that fixes it.
    pub message: String,
}

/// The kernel's names of the checksum offloads (`ethtool -K IF tx off`).
const TX_CHECKSUM: &[&str] = &[
    "tx-checksum-ip-generic",
    "tx-checksum-ipv4",
    "tx-checksum-ipv6",
];
/// Segmentation offloads: a sender hands over segments up to 64 KiB.
const SEGMENTATION: &[&str] = &[
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation",
    "tx-tcp-accecn-segmentation",
    "tx-udp-segmentation",
    "tx-generic-segmentation",
];
/// Receive offloads that merge packets before skb-mode XDP sees them.
const MERGING: &[&str] = &["rx-gro", "rx-lro", "rx-udp-gro-forwarding", "rx-gro-hw"];

/// What the socket is, for [`inspect`].
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub ifname: &'a str,
    pub ifindex: u32,
    /// XDP runs in skb (generic) mode: after GRO, on whole superpackets.
    pub skb_mode: bool,
    /// The largest packet a frame holds on receive.
    pub frame_room: u32,
    /// Partial checksums are completed for the user.
    pub completes_checksums: bool,
    /// Packets may span several frames: a frame need not hold a whole packet.
    pub multi_buffer: bool,
}

/// Multi-buffer (asked for, or needed because a packet may be larger than a frame) on a
/// driver that has zero-copy but cannot combine it with multi-buffer
/// (`xdp_zc_max_segs` 1): the kernel bound in copy mode. Said, with the way to
/// zero-copy.
pub fn multi_buffer_costs_zerocopy(
    ifname: &str,
    ifindex: u32,
    mtu: u32,
    frame_room: u32,
) -> Option<Advice> {
    #[cfg(feature = "loader")]
    {
        let st = crate::program::query(ifindex).ok()?;
        if st.features & crate::program::XDP_ACT_XSK_ZEROCOPY == 0 {
            return None; // no zero-copy to lose
        }
        let segs = st.zc_max_segs;
        Some(Advice {
            ifname: ifname.to_string(),
            features: Vec::new(),
            message: format!(
                "{ifname} has zero-copy, but its driver cannot combine it with multi-buffer \
                 (xdp_zc_max_segs {segs}), so the socket runs in copy mode: multi-buffer is on \
                 because a packet may be larger than a frame (MTU {mtu}, {frame_room} bytes \
                 per frame for a packet). For zero-copy, lower the MTU to {} or less \
                 (ip link set dev {ifname} mtu ...), or open the socket with \
                 multi_buffer=False (larger packets are then dropped and counted)",
                frame_room.saturating_sub(super::L2_OVERHEAD)
            ),
        })
    }
    #[cfg(not(feature = "loader"))]
    {
        let _ = (ifname, ifindex, mtu, frame_room);
        None
    }
}

/// Where preferred busy polling cannot work: skb mode and veth give the socket no NAPI
/// ID (measured on Linux 6.18), so the kernel processes the packets in softirq as
/// without it. Whether it works is known for sure once packets came: see
/// [`XskSocket::napi_id`](crate::XskSocket::napi_id).
pub fn busy_poll(ifname: &str, skb_mode: bool) -> Option<Advice> {
    let why = if skb_mode {
        "XDP runs in skb mode, which has no NAPI ID for the socket"
    } else if netdev::if_driver(ifname).as_deref() == Some("veth") {
        "veth gives an AF_XDP socket no NAPI ID"
    } else {
        return None;
    };
    Some(Advice {
        ifname: ifname.to_string(),
        features: Vec::new(),
        message: format!(
            "busy_poll on {ifname} has no effect: {why}, so the kernel cannot busy-poll for \
             it and packets are processed in softirq as without busy_poll"
        ),
    })
}

/// The `ethtool -K` command that turns `features` off, with ethtool's short names
/// where one covers a group (`tx` for the checksum offloads, `tso`, `gso`, `gro`,
/// `lro`).
fn command(ifname: &str, features: &[&str]) -> String {
    let mut words: Vec<&str> = Vec::new();
    for f in features {
        let word = match *f {
            f if f.starts_with("tx-checksum-") => "tx",
            f if f.starts_with("tx-tcp") => "tso",
            "tx-generic-segmentation" => "gso",
            "rx-gro" => "gro",
            "rx-lro" => "lro",
            other => other,
        };
        if !words.contains(&word) {
            words.push(word);
        }
    }
    let mut c = format!("ethtool -K {ifname}");
    for w in words {
        c.push_str(&format!(" {w} off"));
    }
    c
}

/// What happens to a superpacket at this socket.
fn oversized(c: &Context<'_>) -> String {
    if c.multi_buffer {
        "larger than the MTU: received whole (multi-buffer), but too large to send on as \
         they are"
            .to_string()
    } else {
        format!(
            "larger than a frame ({} bytes): dropped (rx_dropped)",
            c.frame_room
        )
    }
}

/// The veth peer of `ifname`, if it is in this network namespace: the index the veth
/// driver reports must name a veth whose own peer is `ifindex`.
fn visible_peer(ifname: &str, ifindex: u32) -> Option<String> {
    let peer = netdev::if_name(ethtool::veth_peer_index(ifname)?)?;
    (ethtool::veth_peer_index(&peer)? == ifindex).then_some(peer)
}

/// The conditions on the socket's interface that make packets arrive unfinished or
/// too large, each with its fix.
pub fn inspect(c: &Context<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    let is_veth = ethtool::veth_peer_index(c.ifname).is_some();
    let peer = visible_peer(c.ifname, c.ifindex);
    let peer_features = peer.as_deref().and_then(|p| ethtool::features(p).ok());
    if let (Some(peer), Some(f)) = (&peer, &peer_features) {
        let on = f.on_and_changeable(TX_CHECKSUM);
        if !on.is_empty() && !c.completes_checksums {
            out.push(Advice {
                ifname: peer.clone(),
                message: format!(
                    "{peer}, the veth peer of {}, offloads TCP/UDP checksums: its packets \
                     arrive with partial checksums, which a receiver drops when they are \
                     sent on unchanged. Complete them (complete_checksums=True; a Forwarder \
                     does by default), or turn the offload off: {}",
                    c.ifname,
                    command(peer, &on)
                ),
                features: on,
            });
        }
        let on = f.on_and_changeable(SEGMENTATION);
        if c.skb_mode && !on.is_empty() {
            out.push(Advice {
                ifname: peer.clone(),
                message: format!(
                    "{peer}, the veth peer of {}, offloads segmentation: in skb mode its TCP \
                     and UDP segments arrive as one packet of up to 64 KiB, {}. Use native \
                     mode (the kernel then turns it off itself), or: {}",
                    c.ifname,
                    oversized(c),
                    command(peer, &on)
                ),
                features: on,
            });
        }
    } else if is_veth && c.skb_mode {
        out.push(Advice {
            ifname: c.ifname.to_string(),
            features: Vec::new(),
            message: format!(
                "{} is a veth whose peer is in another network namespace: if the peer \
                 offloads segmentation (the default), in skb mode its TCP and UDP segments \
                 arrive as packets of up to 64 KiB, {}. Use native mode, or run `ethtool -K \
                 PEER tso off gso off` in the peer's namespace",
                c.ifname,
                oversized(c)
            ),
        });
    }
    if c.skb_mode {
        if let Ok(f) = ethtool::features(c.ifname) {
            let on = f.on_and_changeable(MERGING);
            if !on.is_empty() {
                out.push(Advice {
                    ifname: c.ifname.to_string(),
                    message: format!(
                        "{} merges received packets (GRO/LRO) before skb-mode XDP sees them: \
                         superpackets of up to 64 KiB, {}. Use native mode, or: {}",
                        c.ifname,
                        oversized(c),
                        command(c.ifname, &on)
                    ),
                    features: on,
                });
            }
        }
    }
    if let Ok(mtu) = netdev::if_mtu(c.ifname) {
        if !c.multi_buffer && mtu + L2_OVERHEAD > c.frame_room {
            out.push(Advice {
                ifname: c.ifname.to_string(),
                features: Vec::new(),
                message: format!(
                    "the MTU of {} ({mtu}) lets packets of up to {} bytes arrive, but a frame \
                     holds {} on receive: larger ones are dropped (rx_dropped). Use \
                     multi_buffer (Linux 6.6+), lower the MTU (ip link set dev {} mtu {}) or \
                     use frame_size=4096",
                    c.ifname,
                    mtu + L2_OVERHEAD,
                    c.frame_room,
                    c.ifname,
                    c.frame_room.saturating_sub(L2_OVERHEAD)
                ),
            });
        }
    }
    out
}

/// Turns off the features the advice names; returns what changed (one line each) and
/// the advice that still holds (nothing to turn off, or the kernel refused).
pub fn fix(advice: Vec<Advice>) -> (Vec<String>, Vec<Advice>) {
    let mut changed = Vec::new();
    let mut remaining = Vec::new();
    for a in advice {
        if a.features.is_empty() {
            remaining.push(a);
            continue;
        }
        match ethtool::turn_off(&a.ifname, &a.features) {
            Ok(still_on) if still_on.is_empty() => changed.push(format!(
                "turned off {} offloads on {} (as {} does)",
                a.features.len(),
                a.ifname,
                command(&a.ifname, &a.features)
            )),
            Ok(still_on) => remaining.push(Advice {
                message: format!(
                    "{} (fix_offloads could not turn off {} on {})",
                    a.message,
                    still_on.join(", "),
                    a.ifname
                ),
                ..a
            }),
            Err(e) => remaining.push(Advice {
                message: format!("{} (fix_offloads failed on {}: {e})", a.message, a.ifname),
                ..a
            }),
        }
    }
    (changed, remaining)
}
