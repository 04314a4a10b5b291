//! Who holds an interface's XDP hook (`afxdp status`), and removing afxdp_rs's own
//! program from it and nothing else (`afxdp detach`).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::libbpf_sys;

use super::join::find_link;
use super::{query, PROGRAM_PREFIX};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::bpf::{self, Object};
use crate::sys::netdev;

/// What is attached to an interface's XDP hook and who keeps it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStatus {
    pub ifname: String,
    pub ifindex: u32,
    /// The attached program's id, 0 when none.
    pub prog_id: u32,
    /// "none", "native", "skb", "hw" or "multi".
    pub mode: &'static str,
    /// The program's name in the kernel (empty when none, or unreadable).
    pub name: String,
    /// Whether it is afxdp_rs's default program (any version).
    pub ours: bool,
    /// The BPF link that attaches it (None: attached through netlink, or nothing).
    pub link_id: Option<u32>,
    /// The processes holding that link (pid, command): those using the program.
    pub holders: Vec<(u32, String)>,
    /// For afxdp_rs's program: each rx queue a socket takes packets of, and which.
    pub queues: Vec<QueueUse>,
}

/// What the socket on one rx queue takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUse {
    pub queue: u32,
    /// In tcpdump's words ("udp and dst port 53"); empty: every packet of the queue.
    pub takes: String,
    /// Each packet carries the time it reached XDP.
    pub timestamps: bool,
}

/// The taken queues of afxdp_rs's program `prog_id` (empty for any other program, or
/// one of an older version).
fn queues(prog_id: u32) -> Vec<QueueUse> {
    let Some((_, rules)) = super::join::default_program_maps(prog_id) else {
        return Vec::new();
    };
    rules
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter(|q| q.flags & crate::flow::TAKEN != 0)
        .map(|q| QueueUse {
            queue: q.queue,
            takes: if q.rules.is_empty() {
                String::new()
            } else {
                crate::flow::describe(&q.rules)
            },
            timestamps: q.flags & crate::flow::STAMP != 0,
        })
        .collect()
}

/// What is attached to `ifname`'s XDP hook, by which link, held by which processes.
pub fn status(ifname: &str) -> Result<HookStatus> {
    let ifindex = netdev::if_index(ifname)?;
    let state = query(ifindex)?;
    let name = if state.prog_id == 0 {
        String::new()
    } else {
        bpf::fd_by_id(Object::Prog, state.prog_id)
            .and_then(|fd| bpf::prog_info(fd.as_fd()))
            .map(|i| i.name)
            .unwrap_or_default()
    };
    let link_id = (state.prog_id != 0)
        .then(|| find_link(state.prog_id, ifindex).map(|(id, _)| id))
        .flatten();
    Ok(HookStatus {
        ifname: ifname.to_string(),
        ifindex,
        prog_id: state.prog_id,
        mode: state.mode,
        ours: name.starts_with(PROGRAM_PREFIX),
        holders: link_id.map(bpf::link_holders).unwrap_or_default(),
        queues: if name.starts_with(PROGRAM_PREFIX) {
            queues(state.prog_id)
        } else {
            Vec::new()
        },
        name,
        link_id,
    })
}

/// Removes afxdp_rs's program from `ifname`'s XDP hook (detaching its link, or the
/// netlink attachment when there is no link); returns what it removed. Any other
/// program is left in place with an error that says whose it is. The sockets of the
/// processes that used it stop receiving and report the program as detached.
pub fn detach(ifname: &str) -> Result<HookStatus> {
    let st = status(ifname)?;
    if st.prog_id == 0 {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("{ifname} has no XDP program attached: nothing to detach"),
        ));
    }
    if !st.ours {
        return Err(Error::new(
            ErrorKind::ProgramAttached,
            format!(
                "the XDP program on {ifname} (id {}, \"{}\", {} mode) is not afxdp_rs's: \
                 afxdp detach removes only its own; `ip link set dev {ifname} xdp off` \
                 removes any program",
                st.prog_id, st.name, st.mode
            ),
        ));
    }
    let failed = |e: io::Error| Error::os(format!("detaching the XDP program from {ifname}"), e);
    match find_link(st.prog_id, st.ifindex) {
        Some((_, link)) => bpf::link_detach(link.as_fd()).map_err(failed)?,
        None => {
            let prog = bpf::fd_by_id(Object::Prog, st.prog_id).map_err(failed)?;
            // SAFETY: bpf_xdp_attach_opts is plain old data; zero is a valid value.
            let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { std::mem::zeroed() };
            opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _;
            // Only if this very program is still the one attached.
            opts.old_prog_fd = prog.as_raw_fd();
            let flags = match st.mode {
                "skb" => libbpf_sys::XDP_FLAGS_SKB_MODE,
                "native" => libbpf_sys::XDP_FLAGS_DRV_MODE,
                "hw" => libbpf_sys::XDP_FLAGS_HW_MODE,
                _ => 0,
            };
            // SAFETY: opts is a valid options struct with sz set; the fd it names is
            // open for the duration of the call.
            let rc = unsafe { libbpf_sys::bpf_xdp_detach(st.ifindex as i32, flags, &opts) };
            if rc < 0 {
                return Err(failed(io::Error::from_raw_os_error(-rc)));
            }
        }
    }
    Ok(st)
}
