//! What a socket is opened with: ring sizes, bind flags, the UMEM geometry, and how
//! packets are steered to it ([`Steering`]). Everything is checked before anything is
//! set up, and every error names the value and says what to use instead.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::flow::Rule;
#[cfg(feature = "loader")]
use crate::program::XdpMode;
use crate::umem::UmemConfig;
use crate::xskmap::XskMap;

/// The defaults of every socket setting, in one place: [`SocketConfig::default`], the
/// UMEM's and busy polling's, and the Python signatures all take them from here (a
/// test checks the written-out Python signature and stubs against them).
pub mod defaults {
    pub use crate::umem::{
        DEFAULT_FRAME_COUNT as FRAME_COUNT, DEFAULT_FRAME_SIZE as FRAME_SIZE,
        DEFAULT_HEADROOM as HEADROOM,
    };
    /// Each of the four rings.
    pub const RING_SIZE: u32 = 2048;
    pub const NEED_WAKEUP: bool = true;
    pub const BUSY_POLL_USECS: u32 = 20;
    pub const BUSY_POLL_BUDGET: u32 = 64;
}

/// How to bind: copy mode, zero-copy, or whatever the driver supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose (zero-copy where the driver supports it, else copy).
    #[default]
    Auto,
    /// `XDP_COPY`: always copy (QEMU's force-copy).
    Copy,
    /// `XDP_ZEROCOPY`: fail if the driver cannot do zero-copy.
    ZeroCopy,
}

impl BindMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" | "default" => Ok(BindMode::Auto),
            "copy" => Ok(BindMode::Copy),
            "zerocopy" | "zero-copy" | "zc" => Ok(BindMode::ZeroCopy),
            other => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "bind={other:?} is not a bind mode: use \"copy\", \"zerocopy\" or \"auto\""
                ),
            )),
        }
    }
}

/// Whether a packet may span several frames (AF_XDP multi-buffer, `XDP_USE_SG`): for
/// jumbo frames and anything larger than a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiBuffer {
    /// On where the kernel and the driver support it, else off (and reported).
    #[default]
    Auto,
    /// On, or an error naming what refused it.
    On,
    /// Off: a packet larger than a frame is dropped (and counted).
    Off,
}

/// Preferred busy polling (`SO_PREFER_BUSY_POLL`): the kernel runs the device's NAPI
/// in the receiving process's system calls instead of in softirq, and the process
/// must keep calling (a receive loop does). Works where the kernel gives the socket a
/// NAPI ID (a real NIC's driver); veth and skb mode have none (see
/// [`XskSocket::napi_id`](crate::XskSocket::napi_id)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: how long one system call may poll the device, in microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets per poll (the batch size).
    pub budget: u32,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            usecs: defaults::BUSY_POLL_USECS,
            budget: defaults::BUSY_POLL_BUDGET,
        }
    }
}

impl BusyPoll {
    pub fn validate(&self) -> Result<()> {
        if self.usecs == 0 || self.usecs > i32::MAX as u32 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "busy_poll_usecs={}: use a time from 1 to {} microseconds (20 is usual)",
                    self.usecs,
                    i32::MAX
                ),
            ));
        }
        if self.budget == 0 || self.budget > u16::MAX as u32 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "busy_poll_budget={}: use a packet count from 1 to {} (the batch size, \
                     e.g. 64)",
                    self.budget,
                    u16::MAX
                ),
            ));
        }
        Ok(())
    }
}

/// How packets reach the socket: which XDP program redirects them, and how the socket
/// gets into that program's XSKMAP.
#[derive(Debug, Clone)]
pub enum Steering {
    /// Attach the bundled program (shared by this process's sockets on the interface)
    /// and register the socket in its map. Only for sockets with an rx ring.
    #[cfg(feature = "loader")]
    DefaultProgram(XdpMode),
    /// Register the socket in this XSKMAP: a program someone else attached (QEMU's
    /// `inhibit` with `xsks-map-fd`). The entry is removed when the socket closes.
    Map(Arc<XskMap>),
    /// Do nothing: the socket only sends, or whoever created it already put it in a
    /// program's map (a handed-over socket, QEMU's `inhibit` with `sock-fds`).
    None,
}

impl Default for Steering {
    fn default() -> Self {
        #[cfg(feature = "loader")]
        return Steering::DefaultProgram(XdpMode::Auto);
        #[cfg(not(feature = "loader"))]
        return Steering::None;
    }
}

/// Where the XSKMAP of a program someone else attached comes from.
#[derive(Debug, Clone, Copy)]
pub enum MapSource<'a> {
    /// A descriptor of the caller's (duplicated: the caller keeps its own).
    Fd(RawFd),
    /// A path on a bpf filesystem where the map is pinned.
    Path(&'a str),
}

/// The options by which a caller chooses the steering (QEMU's `inhibit`, `sock-fds`
/// and `xsks-map-fd`), checked for combinations that cannot work.
#[derive(Debug, Clone, Copy, Default)]
pub struct SteeringOptions<'a> {
    /// Attach the default program (ignored with `inhibit`).
    pub load_program: bool,
    /// Use a program someone else attached: needs `handed_over` or `maps`.
    pub inhibit: bool,
    /// The socket comes from someone who already put it in a program's XSKMAP.
    pub handed_over: bool,
    /// The XSKMAP to register in (at most one).
    pub maps: &'a [MapSource<'a>],
    /// The attach mode of the default program.
    #[cfg(feature = "loader")]
    pub mode: XdpMode,
}

impl Steering {
    /// The steering the options ask for, or an error naming what does not fit.
    pub fn choose(o: &SteeringOptions<'_>) -> Result<Steering> {
        let external = o.handed_over || !o.maps.is_empty();
        if o.inhibit && !external {
            return Err(config_error(
                "inhibit=True loads no XDP program, so the socket needs one already \
                 attached: pass sock_fd= (a socket already in that program's XSKMAP) or \
                 xsks_map_fd= / xsks_map_path= (its XSKMAP, where this socket is inserted)",
            ));
        }
        if external && !o.inhibit {
            return Err(config_error(
                "sock_fd, xsks_map_fd and xsks_map_path use an XDP program someone else \
                 attached: pass inhibit=True with them",
            ));
        }
        match o.maps {
            [] => {}
            [one] => {
                let map = match *one {
                    MapSource::Fd(fd) => XskMap::adopt(fd)?,
                    MapSource::Path(path) => XskMap::open_pinned(path)?,
                };
                return Ok(Steering::Map(Arc::new(map)));
            }
            _ => return Err(config_error("pass xsks_map_fd or xsks_map_path, not both")),
        }
        if o.inhibit || !o.load_program {
            return Ok(Steering::None);
        }
        #[cfg(feature = "loader")]
        return Ok(Steering::DefaultProgram(o.mode));
        #[cfg(not(feature = "loader"))]
        return Err(config_error(
            "this build of afxdp_rs has no program loader (the `loader` feature is off): \
             pass load_program=False and steer packets with your own XDP program",
        ));
    }
}

fn config_error(msg: &str) -> Error {
    Error::new(ErrorKind::InvalidConfig, msg)
}

/// Everything needed to open a socket.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    pub umem: UmemConfig,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
    /// Rx ring entries (power of two), 0 for a send-only socket.
    pub rx_size: u32,
    /// Tx ring entries (power of two), 0 for a receive-only socket.
    pub tx_size: u32,
    pub bind: BindMode,
    /// Packets spanning several frames (jumbo frames).
    pub multi_buffer: MultiBuffer,
    /// Bind with `XDP_USE_NEED_WAKEUP` (recommended; off means a syscall every batch).
    pub need_wakeup: bool,
    /// How packets reach the socket.
    pub steering: Steering,
    /// Take only the packets of the queue that match one of these (see
    /// [`crate::flow`]); empty: all of them. Needs the default program.
    pub rules: Vec<Rule>,
    /// Have the program stamp each received packet with the time it reached XDP (see
    /// [`RxFrames::timestamp`](crate::RxFrames::timestamp)). Needs the default program.
    pub timestamps: bool,
    /// Complete partial checksums of received packets in place (see [`crate::csum`]):
    /// for a program that passes them on to something that checks them.
    pub complete_checksums: bool,
    /// Turn off the offloads that make packets arrive unfinished or too large (see
    /// [`super::advice`]) on the interface and on its veth peer, where it is in this
    /// network namespace.
    pub fix_offloads: bool,
    /// The UMEM frames (indices `start..end`) this socket's pool uses; `None` for all.
    /// Sockets sharing a UMEM must use disjoint ranges.
    pub frames: Option<(u32, u32)>,
    /// Descriptors kept open as long as the socket: e.g. the BPF link of a program a
    /// privileged helper attached, so the program stays exactly as long as the socket.
    pub hold: Vec<Arc<OwnedFd>>,
    /// How long to retry a bind that the kernel answers with EBUSY (a socket on the
    /// same queue that was just closed is torn down asynchronously).
    pub bind_retry: Duration,
    /// Preferred busy polling; `None`: the kernel's default (interrupts and softirq).
    pub busy_poll: Option<BusyPoll>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            umem: UmemConfig::default(),
            fill_size: defaults::RING_SIZE,
            comp_size: defaults::RING_SIZE,
            rx_size: defaults::RING_SIZE,
            tx_size: defaults::RING_SIZE,
            bind: BindMode::Auto,
            multi_buffer: MultiBuffer::Auto,
            need_wakeup: defaults::NEED_WAKEUP,
            steering: Steering::default(),
            rules: Vec::new(),
            timestamps: false,
            complete_checksums: false,
            fix_offloads: false,
            frames: None,
            hold: Vec::new(),
            bind_retry: Duration::from_secs(2),
            busy_poll: None,
        }
    }
}

const MAX_RING: u32 = 1 << 20;

fn check_ring(name: &str, size: u32, optional: bool) -> Result<()> {
    if optional && size == 0 {
        return Ok(());
    }
    if !size.is_power_of_two() || size > MAX_RING {
        let zero = if optional { ", or 0 for none" } else { "" };
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{name}={size} is not a valid ring size: use a power of two from 1 to \
                 {MAX_RING}{zero} (e.g. {})",
                size.checked_next_power_of_two()
                    .unwrap_or(MAX_RING)
                    .clamp(1, MAX_RING)
            ),
        ));
    }
    Ok(())
}

impl SocketConfig {
    pub fn validate(&self) -> Result<()> {
        self.umem.validate()?;
        check_ring("fill_size", self.fill_size, false)?;
        check_ring("comp_size", self.comp_size, false)?;
        check_ring("rx_size", self.rx_size, true)?;
        check_ring("tx_size", self.tx_size, true)?;
        if let Some(b) = &self.busy_poll {
            b.validate()?;
        }
        if self.rx_size == 0 && self.tx_size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "rx_size=0 and tx_size=0: a socket needs an rx ring, a tx ring or both",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(load_program: bool, inhibit: bool, handed_over: bool) -> Result<Steering> {
        Steering::choose(&SteeringOptions {
            load_program,
            inhibit,
            handed_over,
            maps: &[],
            #[cfg(feature = "loader")]
            mode: XdpMode::Auto,
        })
    }

    #[test]
    fn the_steering_is_chosen_from_the_options() {
        #[cfg(feature = "loader")]
        assert!(matches!(
            choose(true, false, false),
            Ok(Steering::DefaultProgram(_))
        ));
        assert!(matches!(choose(false, false, false), Ok(Steering::None)));
        // A handed-over socket is already in someone's map: nothing to register.
        assert!(matches!(choose(true, true, true), Ok(Steering::None)));
    }

    #[test]
    fn steering_options_that_cannot_work_are_named() {
        let e = choose(true, true, false).unwrap_err().to_string();
        assert!(e.contains("inhibit=True loads no XDP program"), "{e}");
        let e = choose(true, false, true).unwrap_err().to_string();
        assert!(e.contains("pass inhibit=True with them"), "{e}");
        let two = [MapSource::Path("/a"), MapSource::Path("/b")];
        let e = Steering::choose(&SteeringOptions {
            inhibit: true,
            maps: &two,
            ..SteeringOptions::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn the_defaults_live_in_one_place() {
        let c = SocketConfig::default();
        assert_eq!(
            (c.fill_size, c.comp_size, c.rx_size, c.tx_size),
            (
                defaults::RING_SIZE,
                defaults::RING_SIZE,
                defaults::RING_SIZE,
                defaults::RING_SIZE
            )
        );
        assert_eq!(
            (c.umem.frame_size, c.umem.frame_count),
            (defaults::FRAME_SIZE, defaults::FRAME_COUNT)
        );
        assert_eq!(BusyPoll::default().usecs, defaults::BUSY_POLL_USECS);
        c.validate().unwrap();
    }

    #[test]
    fn ring_sizes_and_busy_polling_are_checked() {
        let bad = SocketConfig {
            rx_size: 1000,
            ..SocketConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rx_size=1000") && e.contains("1024"), "{e}");
        let none = SocketConfig {
            rx_size: 0,
            tx_size: 0,
            ..SocketConfig::default()
        };
        assert!(none
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs an rx ring"));
        let b = BusyPoll {
            usecs: 0,
            budget: 64,
        };
        assert!(b
            .validate()
            .unwrap_err()
            .to_string()
            .contains("busy_poll_usecs=0"));
    }
}
