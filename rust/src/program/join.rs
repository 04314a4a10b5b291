//! Joining the default program another process attached, and naming a program that is
//! not afxdp_rs's.
//!
//! An attached program is afxdp_rs's when it has the default program's name and one
//! XSKMAP of the default map's name and size. A joining process opens that map (by its
//! id) to register its sockets, and opens the program's BPF link (found among the
//! system's links by program id and interface) so that the program stays attached while
//! it uses it, whichever process attached it.

use std::os::fd::{AsFd, OwnedFd};

use super::{mode_name, AttachMode, XdpMode, XdpProgram, XdpState, MAP_NAME, MAX_QUEUES};
use super::{PROGRAM_NAME, RULES_MAP_NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::RulesMap;
use crate::sys::bpf::{self, Object};
use crate::xskmap::XskMap;

/// The XDP link that attaches program `prog_id` to interface `ifindex`, if any.
pub(super) fn find_link(prog_id: u32, ifindex: u32) -> Option<(u32, OwnedFd)> {
    bpf::link_ids().find_map(|id| {
        let fd = bpf::fd_by_id(Object::Link, id).ok()?;
        let info = bpf::link_info(fd.as_fd()).ok()?;
        (info.link_type == bpf::BPF_LINK_TYPE_XDP
            && info.prog_id == prog_id
            && info.xdp_ifindex == ifindex)
            .then_some((id, fd))
    })
}

/// The maps of program `prog_id` (its XSKMAP and its rules), if it is afxdp_rs's
/// default program of this version.
pub(super) fn default_program_maps(prog_id: u32) -> Option<(XskMap, RulesMap)> {
    let prog = bpf::fd_by_id(Object::Prog, prog_id).ok()?;
    let info = bpf::prog_info(prog.as_fd()).ok()?;
    if info.name != PROGRAM_NAME || info.map_ids.len() != 2 {
        return None;
    }
    let (mut xsks, mut rules) = (None, None);
    for &id in &info.map_ids {
        let map = bpf::fd_by_id(Object::Map, id).ok()?;
        let m = bpf::map_info(map.as_fd()).ok()?;
        if m.map_type == bpf::BPF_MAP_TYPE_XSKMAP
            && m.name == MAP_NAME
            && m.max_entries == MAX_QUEUES
        {
            xsks = XskMap::from_fd(map).ok();
        } else if m.name == RULES_MAP_NAME && m.max_entries == MAX_QUEUES {
            rules = Some(RulesMap::from_fd(map));
        }
    }
    Some((xsks?, rules?))
}

impl XdpProgram {
    /// Joins the program attached to `ifname` (as `state` says) if it is afxdp_rs's
    /// default program; otherwise fails, saying whose it is and how to remove it.
    pub(super) fn join(ifname: &str, ifindex: u32, state: XdpState, mode: XdpMode) -> Result<Self> {
        let (map, rules) = default_program_maps(state.prog_id)
            .ok_or_else(|| attached_error(ifname, ifindex, state))?;
        let attached = match state.mode {
            "native" => AttachMode::Native,
            "skb" => AttachMode::Skb,
            _ => return Err(attached_error(ifname, ifindex, state)),
        };
        if !mode.accepts(attached) {
            return Err(Error::new(
                ErrorKind::Attach,
                format!(
                    "the afxdp_rs program on {ifname} is attached in {attached} mode (by another \
                     process); mode={:?} cannot be honoured: open the socket with mode=\"{attached}\" \
                     or \"auto\"",
                    mode_name(mode)
                ),
            ));
        }
        Ok(XdpProgram {
            link: find_link(state.prog_id, ifindex).map(|(_, fd)| fd),
            map,
            rules,
            object: None,
            ifname: ifname.to_string(),
            ifindex,
            mode: attached,
            prog_id: state.prog_id,
        })
    }
}

/// The error for a program on `ifname` that is not afxdp_rs's (or not one it can
/// join): which program, how it is attached, who holds it, and the command that
/// removes it.
pub(super) fn attached_error(ifname: &str, ifindex: u32, state: XdpState) -> Error {
    let name = bpf::fd_by_id(Object::Prog, state.prog_id)
        .and_then(|fd| bpf::prog_info(fd.as_fd()))
        .map(|i| format!(" \"{}\"", i.name))
        .unwrap_or_default();
    let how = match find_link(state.prog_id, ifindex) {
        Some((link, _)) => {
            let holders: Vec<String> = bpf::link_holders(link)
                .into_iter()
                .filter(|(pid, _)| *pid != std::process::id())
                .map(|(pid, comm)| format!("{comm} (pid {pid})"))
                .collect();
            let held = if holders.is_empty() {
                String::new()
            } else {
                format!(", held by {}", holders.join(", "))
            };
            format!(
                "it is attached through BPF link {link}{held}: stop that process, or detach \
                 the link with `bpftool link detach id {link}`"
            )
        }
        None => format!("detach it with `ip link set dev {ifname} xdp off`"),
    };
    Error::new(
        ErrorKind::ProgramAttached,
        format!(
            "{ifname} already has an XDP program{name} attached (id {}, {} mode) that is not \
             afxdp_rs's; it is never replaced: {how}, or use that program's XSKMAP \
             (inhibit=True with xsks_map_fd= or xsks_map_path=)",
            state.prog_id, state.mode
        ),
    )
    .with_errno(libc::EBUSY)
}
