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
//! interface index) share one attached program through [`attach`]; it is detached when
//! the last of them drops its handle.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use libbpf_rs::libbpf_sys;
use libbpf_rs::MapCore;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// The compiled program, embedded at build time.
static PROGRAM_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsk_redirect.bpf.o"));
const PROGRAM_NAME: &str = "afxdp_redirect";
const MAP_NAME: &str = "xsks_map";
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
    })
}

/// The default program, attached to one interface.
pub struct XdpProgram {
    // Field order matters: the link is closed (detaching the program) before the
    // object's program and map are released.
    link: OwnedFd,
    object: libbpf_rs::Object,
    ifname: String,
    ifindex: u32,
    netns: u64,
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
    let netns = sys::netns_id();
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    let alive = reg
        .get(&(netns, ifindex))
        .and_then(Weak::upgrade)
        // Detached by someone else: useless to new sockets; attach a fresh one.
        .filter(|p| p.check_attached().is_ok());
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
    let prog = Arc::new(XdpProgram::load_and_attach(ifname, ifindex, netns, mode)?);
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

fn silence_libbpf() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // libbpf prints its own diagnostics to stderr; every failure we care about is
    // reported through our errors instead.
    ONCE.call_once(|| {
        libbpf_rs::set_print(None);
    });
}

impl XdpProgram {
    /// Loads the default program and attaches it to `ifname`, outside the per-process
    /// sharing of [`attach`]: for a privileged helper that hands the program's link and
    /// XSKMAP to another process. It stays attached as long as this value (or a
    /// duplicate of its link descriptor) lives.
    pub fn attach_standalone(ifname: &str, mode: XdpMode) -> Result<Self> {
        let ifindex = sys::if_index(ifname)?;
        Self::load_and_attach(ifname, ifindex, sys::netns_id(), mode)
    }

    fn load_and_attach(ifname: &str, ifindex: u32, netns: u64, mode: XdpMode) -> Result<Self> {
        silence_libbpf();
        let state = query(ifindex)?;
        if state.prog_id != 0 {
            return Err(already_attached(ifname, state));
        }
        let object = libbpf_rs::ObjectBuilder::default()
            .open_memory(PROGRAM_OBJECT)
            .and_then(|open| open.load())
            .map_err(|e| load_error(ifname, e))?;
        let prog = object
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .expect("the embedded object has the program");
        let prog_fd = prog.as_fd().as_raw_fd();

        let mut failures = Vec::new();
        for &attempt in mode.candidates() {
            // SAFETY: plain-old-data options; zero is valid, and we set sz and flags.
            let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
            opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
            opts.flags = attempt.flags();
            // SAFETY: prog_fd is the loaded program's descriptor (alive while `object`
            // is), and opts is a valid options struct.
            let fd = unsafe {
                libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, libbpf_sys::BPF_XDP, &opts)
            };
            if fd >= 0 {
                // SAFETY: bpf_link_create returned a new descriptor that we now own.
                let link = unsafe { OwnedFd::from_raw_fd(fd) };
                let prog_id = query(ifindex).map(|s| s.prog_id).unwrap_or(0);
                return Ok(XdpProgram {
                    link,
                    object,
                    ifname: ifname.to_string(),
                    ifindex,
                    netns,
                    mode: attempt,
                    prog_id,
                });
            }
            let errno = -fd;
            match errno {
                libc::EBUSY | libc::EEXIST => {
                    let state = query(ifindex).unwrap_or_default();
                    return Err(already_attached(ifname, state));
                }
                libc::EPERM | libc::EACCES => {
                    return Err(Error::new(
                        ErrorKind::Permission,
                        format!(
                            "attaching the XDP program to {ifname} needs CAP_NET_ADMIN: run \
                             as root, or let a privileged process attach it and pass the \
                             sockets over"
                        ),
                    )
                    .with_errno(errno));
                }
                _ => failures.push((attempt, io::Error::from_raw_os_error(errno))),
            }
        }
        let tried: Vec<String> = failures
            .iter()
            .map(|(m, e)| format!("{m} mode: {e}"))
            .collect();
        let hint = if mode == XdpMode::Native {
            "; the driver may not support native XDP: use mode=\"skb\" or \"auto\""
        } else {
            ""
        };
        Err(Error::new(
            ErrorKind::Attach,
            format!(
                "cannot attach the XDP program to {ifname} in mode={:?} ({}){hint}",
                mode_name(mode),
                tried.join("; ")
            ),
        )
        .with_errno(
            failures
                .last()
                .and_then(|(_, e)| e.raw_os_error())
                .unwrap_or(0),
        ))
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

    fn map_fd(&self) -> i32 {
        let map = self
            .object
            .maps()
            .find(|m| m.name() == MAP_NAME)
            .expect("the embedded object has the map");
        map.as_fd().as_raw_fd()
    }

    /// Routes packets of rx queue `queue` to the socket `sock_fd`.
    pub fn register(&self, queue: u32, sock_fd: i32) -> Result<()> {
        map_insert(self.map_fd(), queue, sock_fd)
    }

    /// Stops routing packets of `queue` to a socket (they go to the kernel stack).
    pub fn unregister(&self, queue: u32) {
        map_delete(self.map_fd(), queue)
    }

    /// The descriptor of the program's XSKMAP (valid while the program lives).
    pub fn xsks_map_fd(&self) -> i32 {
        self.map_fd()
    }

    /// Pins the XSKMAP at `path` in a bpffs mount, so other processes can open it.
    pub fn pin_map(&self, path: &str) -> Result<()> {
        let c = std::ffi::CString::new(path).map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("path {path:?} contains a NUL byte"),
            )
        })?;
        // SAFETY: c is a valid NUL-terminated path and the map fd is open.
        let rc = unsafe { libbpf_sys::bpf_obj_pin(self.map_fd(), c.as_ptr()) };
        if rc < 0 {
            return Err(Error::os(
                format!("pinning the XSKMAP at {path} (is a bpf filesystem mounted there?)"),
                io::Error::from_raw_os_error(-rc),
            ));
        }
        Ok(())
    }

    #[doc(hidden)]
    pub fn netns(&self) -> u64 {
        self.netns
    }

    #[doc(hidden)]
    pub fn link_fd(&self) -> i32 {
        self.link.as_raw_fd()
    }

    /// Fails when the program's link was detached by someone else (`bpftool link
    /// detach`, BPF_LINK_DETACH): the program no longer runs on the interface and no
    /// packet reaches the sockets it served.
    pub fn check_attached(&self) -> Result<()> {
        check_link(self.link.as_fd(), &self.ifname)
    }
}

/// Whether `fd` is a BPF link (rather than a map, a program or anything else).
pub fn is_bpf_link(fd: BorrowedFd<'_>) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-link")
}

/// Fails when `link` (an XDP BPF link) was detached from its interface: the kernel
/// then reports it with interface index 0.
pub fn check_link(link: BorrowedFd<'_>, ifname: &str) -> Result<()> {
    // SAFETY: bpf_link_info is plain old data; zero is a valid value for it.
    let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
    // SAFETY: link is an open descriptor, info is writable and len says its size; the
    // kernel writes at most len bytes.
    let rc = unsafe { libbpf_sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 || info.type_ != libbpf_sys::BPF_LINK_TYPE_XDP {
        return Ok(()); // not an XDP link: nothing to watch
    }
    // SAFETY: the kernel filled the xdp member of the union for an XDP link.
    let ifindex = unsafe { info.__bindgen_anon_1.xdp.ifindex };
    if ifindex != 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ProgramDetached,
        format!(
            "the XDP program (id {}) that steered {ifname}'s packets to this socket was              detached by someone else (bpftool link detach, or another tool): no packet              reaches the socket any more. Close it and open a new one (which attaches the              program again), and find out what removed it",
            info.prog_id
        ),
    ))
}

/// Puts socket `sock_fd` at key `queue` of the XSKMAP `map_fd`.
pub fn map_insert(map_fd: i32, queue: u32, sock_fd: i32) -> Result<()> {
    let key = queue;
    let value = sock_fd as u32;
    // SAFETY: key and value point at 4-byte values, the XSKMAP's key and value sizes.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(
            map_fd,
            (&key as *const u32).cast(),
            (&value as *const u32).cast(),
            libbpf_sys::BPF_ANY as u64,
        )
    };
    if rc < 0 {
        let err = io::Error::from_raw_os_error(-rc);
        return Err(match -rc {
            libc::E2BIG => Error::new(
                ErrorKind::InvalidQueue,
                format!("queue {queue} has no slot in the XSKMAP (fd {map_fd}): it is too small"),
            ),
            libc::EOPNOTSUPP => Error::new(
                ErrorKind::InvalidConfig,
                format!("descriptor {sock_fd} is not an AF_XDP socket: the XSKMAP refuses it"),
            ),
            _ => Error::os(
                format!("inserting the socket of queue {queue} into the XSKMAP (fd {map_fd})"),
                err,
            ),
        });
    }
    Ok(())
}

/// Removes key `queue` from the XSKMAP `map_fd` (a missing entry is fine).
pub fn map_delete(map_fd: i32, queue: u32) {
    let key = queue;
    // SAFETY: key points at a 4-byte value, the XSKMAP's key size.
    unsafe { libbpf_sys::bpf_map_delete_elem(map_fd, (&key as *const u32).cast()) };
}

/// Checks that `fd` is an XSKMAP and returns a duplicate of it that we own.
pub fn adopt_xsks_map(fd: i32) -> Result<OwnedFd> {
    // SAFETY: plain-old-data info struct; zero is a valid value.
    let mut info: libbpf_sys::bpf_map_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
    // SAFETY: info is writable and len holds its size.
    let rc = unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd, &mut info, &mut len) };
    if rc < 0 || info.type_ != libbpf_sys::BPF_MAP_TYPE_XSKMAP {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "xsks_map_fd={fd} is not an XSKMAP: pass the descriptor of the \
                 BPF_MAP_TYPE_XSKMAP that the attached XDP program redirects to"
            ),
        ));
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid descriptor returns a new one we own.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(Error::last_os(format!("duplicating xsks_map_fd={fd}")));
    }
    // SAFETY: dup is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Opens an XSKMAP pinned in bpffs at `path`.
pub fn open_pinned_map(path: &str) -> Result<OwnedFd> {
    let c = std::ffi::CString::new(path).map_err(|_| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("path {path:?} contains a NUL byte"),
        )
    })?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libbpf_sys::bpf_obj_get(c.as_ptr()) };
    if fd < 0 {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "xsks_map_path={path:?} cannot be opened ({}): pin the XSKMAP there first \
                 (it must be on a bpf filesystem)",
                io::Error::from_raw_os_error(-fd)
            ),
        )
        .with_errno(-fd));
    }
    // SAFETY: bpf_obj_get returned a new descriptor that we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    adopt_xsks_map(owned.as_raw_fd())
}

fn already_attached(ifname: &str, state: XdpState) -> Error {
    Error::new(
        ErrorKind::ProgramAttached,
        format!(
            "{ifname} already has an XDP program attached (id {}, {} mode) that afxdp_rs did \
             not attach; it is never replaced: detach it first (`ip link set dev {ifname} xdp \
             off`) or use that program's XSKMAP instead of loading ours",
            state.prog_id, state.mode
        ),
    )
    .with_errno(libc::EBUSY)
}

fn load_error(ifname: &str, e: libbpf_rs::Error) -> Error {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        Error::new(
            ErrorKind::Permission,
            format!(
                "loading the XDP program for {ifname} needs CAP_BPF and CAP_NET_ADMIN (or \
                 root): run with those capabilities, or let a privileged process load it"
            ),
        )
        .with_errno(libc::EPERM)
    } else {
        Error::new(
            ErrorKind::Attach,
            format!("loading the XDP program for {ifname} failed: {e}"),
        )
    }
}
