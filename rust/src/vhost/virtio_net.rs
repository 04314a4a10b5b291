//! virtio-net constants, feature handling and the device config space.

use virtio_bindings::virtio_config::{VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_VERSION_1};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

/// Size of `struct virtio_net_hdr_v1` (also `virtio_net_hdr_mrg_rxbuf`): used whenever
/// VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF is negotiated.
pub const VNET_HDR_LEN: usize = 12;
/// Size of the legacy `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN_LEGACY: usize = 10;
/// Offset of `num_buffers` inside the 12-byte header.
pub const VNET_HDR_NUM_BUFFERS_OFF: usize = 10;
/// Minimum Ethernet frame we accept from the guest (dst + src + ethertype).
pub const ETH_HLEN: usize = 14;
/// Largest frame that can be described without GSO (and the largest we ever hand to the guest).
pub const MAX_FRAME_LEN: usize = 65535;

/// Default queue size limit (QEMU allows rx/tx_queue_size up to 1024).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1024;

#[inline]
pub const fn bit(b: u32) -> u64 {
    1u64 << b
}

/// Virtio feature bits this device offers (without VHOST_USER_F_PROTOCOL_FEATURES, which the
/// backend adds).
pub fn device_features(queue_pairs: u16, with_mtu: bool) -> u64 {
    let mut f = bit(VIRTIO_F_VERSION_1)
        | bit(VIRTIO_F_NOTIFY_ON_EMPTY)
        | bit(VIRTIO_RING_F_EVENT_IDX)
        | bit(VIRTIO_RING_F_INDIRECT_DESC)
        | bit(VIRTIO_NET_F_MAC)
        | bit(VIRTIO_NET_F_MRG_RXBUF)
        | bit(VIRTIO_NET_F_STATUS);
    if queue_pairs > 1 {
        // The spec makes MQ depend on CTRL_VQ (Linux refuses MQ without it).  With vhost-user
        // the control queue is emulated by the VMM (QEMU / cloud-hypervisor), it is never
        // handed to the backend; the VMM turns VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET into
        // SET_VRING_ENABLE messages.
        f |= bit(VIRTIO_NET_F_MQ) | bit(VIRTIO_NET_F_CTRL_VQ);
    }
    if with_mtu {
        f |= bit(VIRTIO_NET_F_MTU);
    }
    f
}

/// What the data path needs to know from the negotiated feature set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetFeatures {
    /// Length of the virtio-net header prepended to every packet, both directions.
    pub hdr_len: usize,
    /// VIRTIO_NET_F_MRG_RXBUF: an RX packet may span several descriptor chains.
    pub mrg_rxbuf: bool,
}

impl NetFeatures {
    pub fn from_acked(acked: u64) -> Self {
        let version_1 = acked & bit(VIRTIO_F_VERSION_1) != 0;
        let mrg_rxbuf = acked & bit(VIRTIO_NET_F_MRG_RXBUF) != 0;
        NetFeatures {
            hdr_len: if version_1 || mrg_rxbuf {
                VNET_HDR_LEN
            } else {
                VNET_HDR_LEN_LEGACY
            },
            mrg_rxbuf,
        }
    }
}

impl Default for NetFeatures {
    /// Modern device with mergeable RX buffers (what Linux negotiates with us).
    fn default() -> Self {
        NetFeatures {
            hdr_len: VNET_HDR_LEN,
            mrg_rxbuf: true,
        }
    }
}

/// The part of `struct virtio_net_config` we implement (little-endian on the wire).
///
/// Layout: mac[6] @0, status u16 @6, max_virtqueue_pairs u16 @8, mtu u16 @10; the rest of the
/// structure (speed, duplex, RSS fields) reads as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfigSpace {
    pub mac: [u8; 6],
    pub status: u16,
    pub max_virtqueue_pairs: u16,
    pub mtu: u16,
}

pub const NET_CONFIG_LEN: usize = 12;
/// Offsets inside the config space.
pub const CFG_MAC_OFF: usize = 0;
pub const CFG_STATUS_OFF: usize = 6;

impl NetConfigSpace {
    pub fn new(mac: [u8; 6], queue_pairs: u16, mtu: Option<u16>) -> Self {
        NetConfigSpace {
            mac,
            status: VIRTIO_NET_S_LINK_UP as u16,
            max_virtqueue_pairs: queue_pairs,
            mtu: mtu.unwrap_or(0),
        }
    }

    pub fn to_bytes(&self) -> [u8; NET_CONFIG_LEN] {
        let mut b = [0u8; NET_CONFIG_LEN];
        b[0..6].copy_from_slice(&self.mac);
        b[6..8].copy_from_slice(&self.status.to_le_bytes());
        b[8..10].copy_from_slice(&self.max_virtqueue_pairs.to_le_bytes());
        b[10..12].copy_from_slice(&self.mtu.to_le_bytes());
        b
    }

    /// Read `size` bytes at `offset`. Always returns exactly `size` bytes (zero padded): the
    /// vhost crate turns a short answer into a zero-length (= error) GET_CONFIG reply.
    pub fn read(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut out = vec![0u8; size as usize];
        let bytes = self.to_bytes();
        let off = offset as usize;
        if off < bytes.len() {
            let n = (bytes.len() - off).min(out.len());
            out[..n].copy_from_slice(&bytes[off..off + n]);
        }
        out
    }

    /// Writes are only accepted inside the MAC field (QEMU pushes the `-device ...,mac=` value
    /// with SET_CONFIG; a legacy driver may also write it).
    pub fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), &'static str> {
        const RO: &str = "only the MAC field of virtio_net_config is writable";
        let off = offset as usize;
        let end = off.checked_add(data.len()).ok_or(RO)?;
        if end > CFG_MAC_OFF + 6 {
            return Err(RO);
        }
        self.mac[off..end].copy_from_slice(data);
        Ok(())
    }
}

/// Parse "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_space_layout_and_padding() {
        let c = NetConfigSpace::new([2, 0, 0, 0, 0, 1], 4, Some(1500));
        let b = c.read(0, 24);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(
            u16::from_le_bytes([b[6], b[7]]),
            VIRTIO_NET_S_LINK_UP as u16
        );
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 4);
        assert_eq!(u16::from_le_bytes([b[10], b[11]]), 1500);
        assert!(b[12..].iter().all(|&x| x == 0));
        assert_eq!(c.read(8, 2), vec![4, 0]);
        assert_eq!(c.read(100, 4), vec![0; 4]);
    }

    #[test]
    fn config_space_mac_write_only() {
        let mut c = NetConfigSpace::new([0; 6], 1, None);
        c.write(0, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(c.mac, [1, 2, 3, 4, 5, 6]);
        c.write(4, &[9, 9]).unwrap();
        assert_eq!(c.mac, [1, 2, 3, 4, 9, 9]);
        assert!(c.write(6, &[0, 0]).is_err());
        assert!(c.write(5, &[0, 0]).is_err());
    }

    #[test]
    fn features_and_header_len() {
        let f = device_features(1, false);
        assert_eq!(f & bit(VIRTIO_NET_F_MQ), 0);
        let f = device_features(2, false);
        assert_ne!(f & bit(VIRTIO_NET_F_MQ), 0);
        assert_ne!(f & bit(VIRTIO_NET_F_CTRL_VQ), 0);
        assert_eq!(NetFeatures::from_acked(bit(VIRTIO_F_VERSION_1)).hdr_len, 12);
        assert_eq!(NetFeatures::from_acked(0).hdr_len, 10);
        assert_eq!(
            NetFeatures::from_acked(bit(VIRTIO_NET_F_MRG_RXBUF)),
            NetFeatures {
                hdr_len: 12,
                mrg_rxbuf: true
            }
        );
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
    }
}
