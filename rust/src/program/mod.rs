//! The default XDP program: load, attach, and the XSKMAP that routes packets to sockets.
//!
//! The program (bpf/xsk_redirect.bpf.c) redirects each packet to the AF_XDP socket
//! registered for its rx queue in `xsks_map`, and passes it to the kernel stack when
//! the queue has no socket.
//!
//! It is attached through a BPF link (`BPF_LINK_CREATE`): the attachment lives exactly
//! as long as the link's file descriptor, so it goes away when the last socket of the
//! interface closes *and* when the process dies, even by SIGKILL. A link can only be
//! created on an interface that has no XDP program in that mode, so a program someone
//! else attached is never replaced: we refuse and say so.
//!
//! All sockets of one process on the same interface (same network namespace, same
//! interface index) share one attached program through [`attach`]. Other processes
//! join it (`join`): they find it through the kernel's ids, use its XSKMAP, and hold a
//! descriptor of its link, so it stays attached while any process uses it and leaves
//! with the last one, also when processes are killed. The parts: `load` (loading and
//! attaching), `join` (finding an attached program, and naming a foreign one).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use libbpf_rs::libbpf_sys;

use crate::error::{Error, ErrorKind, Result};
use crate::flow::{Rule, RulesMap};
use crate::sys;
use crate::xskmap::XskMap;

mod join;
mod load;
pub mod status;

/// The compiled program, embedded at build time.
static PROGRAM_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsk_redirect.bpf.o"));
/// The same program for kernels before 5.18 (built with AFXDP_COMPAT: no multi-buffer
/// mark, no pointer arguments to a global function), loaded where the first is refused.
static PROGRAM_OBJECT_COMPAT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/xsk_redirect_compat.bpf.o"));
/// The program's name in the kernel, with the version of its maps' layout: a process
/// joins only a program of its own version.
const PROGRAM_NAME: &str = "afxdp_redir_v2";
/// What the names of every version of the default program start with.
const PROGRAM_PREFIX: &str = "afxdp_redir";
const MAP_NAME: &str = "xsks_map";
const RULES_MAP_NAME: &str = "rules_map";
/// Entries of `xsks_map` (AFXDP_MAX_QUEUES in the C source).
pub const MAX_QUEUES: u32 = 256;

/// The XDP attach mode asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to skb mode when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only: works on any interface, slower.
    Skb,
}

/// The mode a program is attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Skb,
}

impl AttachMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
        }
    }

    fn flags(&self) -> u32 {
        match self {
            AttachMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            AttachMode::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl XdpMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" | "default" => Ok(XdpMode::Auto),
            "native" | "drv" | "driver" => Ok(XdpMode::Native),
            "skb" | "generic" => Ok(XdpMode::Skb),
            other => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("mode={other:?} is not an XDP mode: use \"native\", \"skb\" or \"auto\""),
            )),
        }
    }

    fn candidates(&self) -> &'static [AttachMode] {
        match self {
            XdpMode::Auto => &[AttachMode::Native, AttachMode::Skb],
            XdpMode::Native => &[AttachMode::Native],
            XdpMode::Skb => &[AttachMode::Skb],
        }
    }

    fn accepts(&self, mode: AttachMode) -> bool {
        self.candidates().contains(&mode)
    }
}

/// What the kernel reports as attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpState {
    /// Id of the attached program, 0 when none.
    pub prog_id: u32,
    /// "none", "native", "skb", "hw" or "multi".
    pub mode: &'static str,
    /// The driver's XDP features (NETDEV_XDP_ACT_*), 0 when the kernel does not say.
    pub features: u64,
    /// How many frames a zero-copy packet may span (`xdp_zc_max_segs`): 1 when the
    /// driver cannot combine zero-copy with multi-buffer, 0 when the kernel does not say.
    pub zc_max_segs: u32,
}

/// NETDEV_XDP_ACT_BASIC: the driver runs XDP programs (native mode).
pub const XDP_ACT_BASIC: u64 = 1 << 0;
/// NETDEV_XDP_ACT_REDIRECT: the driver supports XDP_REDIRECT (to AF_XDP sockets).
pub const XDP_ACT_REDIRECT: u64 = 1 << 1;
/// NETDEV_XDP_ACT_XSK_ZEROCOPY: the driver supports zero-copy AF_XDP.
pub const XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;

/// Asks the kernel which XDP program, if any, is attached to `ifindex`.
pub fn query(ifindex: u32) -> Result<XdpState> {
    // SAFETY: bpf_xdp_query_opts is plain old data; zero is a valid value for it.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: opts is a valid, writable options struct with sz set.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(Error::os(
            format!("querying the XDP state of interface index {ifindex}"),
            io::Error::from_raw_os_error(-rc),
        ));
    }
    let mode = match opts.attach_mode as u32 {
        libbpf_sys::XDP_ATTACHED_NONE => "none",
        libbpf_sys::XDP_ATTACHED_DRV => "native",
        libbpf_sys::XDP_ATTACHED_SKB => "skb",
        libbpf_sys::XDP_ATTACHED_HW => "hw",
        _ => "multi",
    };
    let prog_id = if opts.prog_id != 0 {
        opts.prog_id
    } else {
        opts.drv_prog_id.max(opts.skb_prog_id).max(opts.hw_prog_id)
    };
    Ok(XdpState {
        prog_id,
        mode,
        features: opts.feature_flags,
        zc_max_segs: opts.xdp_zc_max_segs,
    })
}

/// The default program, attached to one interface.
pub struct XdpProgram {
    // Field order matters: the link is closed (detaching the program, unless another
    // process holds it too) before the object's program and map are released.
    /// The BPF link that attaches the program: ours, or a hold on another process's.
    /// None for a program another process attached through netlink (it stays until
    /// that process detaches it).
    link: Option<OwnedFd>,
    map: XskMap,
    /// Per queue, which packets go to its socket (flow steering).
    rules: RulesMap,
    /// The loaded object, when this process loaded the program.
    #[allow(dead_code)] // keeps the loaded program alive
    object: Option<libbpf_rs::Object>,
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    prog_id: u32,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("prog_id", &self.prog_id)
            .finish()
    }
}

type Registry = Mutex<HashMap<(u64, u32), Weak<XdpProgram>>>;

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The default program on `ifname`, attached in `mode` if this process has not already
/// attached it; shared by every socket of the process on that interface.
pub fn attach(ifname: &str, ifindex: u32, mode: XdpMode) -> Result<Arc<XdpProgram>> {
    let netns = sys::netdev::netns_id();
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    let alive = reg
        .get(&(netns, ifindex))
        .and_then(Weak::upgrade)
        // Detached by someone else: useless to new sockets; attach a fresh one.
        .filter(|p| p.is_attached());
    if let Some(prog) = alive {
        if !mode.accepts(prog.mode) {
            return Err(Error::new(
                ErrorKind::Attach,
                format!(
                    "the XDP program on {ifname} is already attached in {} mode by another \
                     socket of this process; mode={:?} cannot be honoured: open every \
                     socket of an interface with the same mode",
                    prog.mode,
                    mode_name(mode)
                ),
            ));
        }
        return Ok(prog);
    }
    let state = query(ifindex)?;
    let prog = if state.prog_id == 0 {
        XdpProgram::load_and_attach(ifname, ifindex, mode)?
    } else {
        // Attached already: by another process (ours to join, or foreign: an error).
        XdpProgram::join(ifname, ifindex, state, mode)?
    };
    let prog = Arc::new(prog);
    reg.insert((netns, ifindex), Arc::downgrade(&prog));
    Ok(prog)
}

fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Auto => "auto",
        XdpMode::Native => "native",
        XdpMode::Skb => "skb",
    }
}

impl XdpProgram {
    /// Loads the default program and attaches it to `ifname`, outside the per-process
    /// sharing of [`attach`]: for a privileged helper that hands the program's link and
    /// XSKMAP to another process. It stays attached as long as this value (or a
    /// duplicate of its link descriptor) lives.
    pub fn attach_standalone(ifname: &str, mode: XdpMode) -> Result<Self> {
        let ifindex = sys::netdev::if_index(ifname)?;
        let state = query(ifindex)?;
        if state.prog_id != 0 {
            return Err(join::attached_error(ifname, ifindex, state));
        }
        Self::load_and_attach(ifname, ifindex, mode)
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Routes packets of rx queue `queue` to `socket`: those that match the rules
    /// [`XdpProgram::set_rules`] set for it, or all. The queue's entry in the rules map
    /// records that it is taken, for [`status`](status::status).
    pub fn register(&self, queue: u32, socket: BorrowedFd<'_>) -> Result<()> {
        self.rules.mark_taken(queue)?;
        self.map.set(queue, socket)
    }

    /// Stops routing packets of `queue` to a socket (they go to the kernel stack).
    pub fn unregister(&self, queue: u32) {
        self.map.clear(queue);
        self.rules.clear(queue);
    }

    /// Routes only the packets of `queue` that match one of `rules` to its socket
    /// (none: all of them); the others go to the kernel stack. With `stamp`, each
    /// packet carries the time it reached XDP in its metadata.
    pub fn set_rules(&self, queue: u32, rules: &[Rule], stamp: bool) -> Result<()> {
        let flags = crate::flow::TAKEN | if stamp { crate::flow::STAMP } else { 0 };
        self.rules.set(queue, rules, flags)
    }

    /// What each taken rx queue's socket takes (from the rules map).
    pub fn queues(&self) -> Result<Vec<crate::flow::QueueRules>> {
        self.rules.entries()
    }

    /// Runs the program `repeat` times on `packet` as if it arrived on queue 0, in the
    /// kernel (BPF_PROG_TEST_RUN, no interface involved); returns its verdict (an XDP
    /// action) and the mean nanoseconds of one run: what the flow rules of queue 0 cost
    /// per packet.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<(u32, u32)> {
        let prog = sys::bpf::fd_by_id(sys::bpf::Object::Prog, self.prog_id)
            .map_err(|e| Error::os(format!("opening program {}", self.prog_id), e))?;
        sys::bpf::prog_test_run(prog.as_fd(), packet, repeat)
            .map_err(|e| Error::os("running the program (BPF_PROG_TEST_RUN)", e))
    }

    /// The program's XSKMAP.
    pub fn xsks_map(&self) -> &XskMap {
        &self.map
    }

    /// The BPF link that keeps the program attached (while it is open anywhere), if
    /// it was attached through one.
    pub fn link(&self) -> Option<BorrowedFd<'_>> {
        self.link.as_ref().map(|l| l.as_fd())
    }

    /// Whether the program is still attached: someone else may have detached its link
    /// (`bpftool link detach`, BPF_LINK_DETACH) or the program, after which no packet
    /// reaches the sockets it served.
    pub fn is_attached(&self) -> bool {
        match &self.link {
            Some(link) => sys::bpf::link_info(link.as_fd()).map_or(true, |i| i.xdp_ifindex != 0),
            None => query(self.ifindex).is_ok_and(|s| s.prog_id == self.prog_id),
        }
    }
}
