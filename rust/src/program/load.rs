//! Loading the embedded program and attaching it through a BPF link, native mode
//! first where the mode allows.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::MapCore;

use super::RULES_MAP_NAME;
use super::{
    join, mode_name, query, XdpMode, XdpProgram, MAP_NAME, PROGRAM_NAME, PROGRAM_OBJECT,
    PROGRAM_OBJECT_COMPAT,
};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::RulesMap;
use crate::sys;
use crate::xskmap::XskMap;

fn silence_libbpf() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // libbpf prints its own diagnostics to stderr; every failure we care about is
    // reported through our errors instead.
    ONCE.call_once(|| {
        libbpf_rs::set_print(None);
    });
}

impl XdpProgram {
    pub(super) fn load_and_attach(ifname: &str, ifindex: u32, mode: XdpMode) -> Result<Self> {
        silence_libbpf();
        let object = load_object(ifname)?;
        let prog = object
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .expect("the embedded object has the program");
        let prog_fd = prog.as_fd().as_raw_fd();
        let map_fd = |name: &str| {
            object
                .maps()
                .find(|m| m.name() == name)
                .map(|m| sys::dup_fd(m.as_fd().as_raw_fd()))
                .expect("the embedded object has its maps")
                .map_err(|e| Error::os(format!("duplicating the {name} descriptor"), e))
        };
        let map = XskMap::from_fd(map_fd(MAP_NAME)?)?;
        let rules = RulesMap::from_fd(map_fd(RULES_MAP_NAME)?);

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
                    link: Some(link),
                    map,
                    rules,
                    object: Some(object),
                    ifname: ifname.to_string(),
                    ifindex,
                    mode: attempt,
                    prog_id,
                });
            }
            let errno = -fd;
            match errno {
                libc::EBUSY | libc::EEXIST => {
                    // Someone attached a program meanwhile: another process that
                    // started at the same moment attaches the same program, which
                    // this one then joins (anything else is named in the error).
                    let state = query(ifindex).unwrap_or_default();
                    if state.prog_id == 0 {
                        return Err(join::attached_error(ifname, ifindex, state));
                    }
                    return XdpProgram::join(ifname, ifindex, state, mode);
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
}

/// Loads the embedded program. It is marked as handling multi-buffer packets
/// (`xdp.frags`, 5.18+) and gives its global function pointers (5.12+): older kernels
/// refuse it (EINVAL), and get the same program built for them (AFXDP_COMPAT), which
/// sees single-buffer packets only (all those kernels deliver to AF_XDP: multi-buffer
/// AF_XDP came with 6.6).
fn load_object(ifname: &str) -> Result<libbpf_rs::Object> {
    let load = |object: &[u8]| {
        libbpf_rs::ObjectBuilder::default()
            .open_memory(object)
            .and_then(|open| open.load())
    };
    match load(PROGRAM_OBJECT) {
        Ok(object) => Ok(object),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::PermissionDenied => Err(load_error(ifname, e)),
        Err(e) => load(PROGRAM_OBJECT_COMPAT).map_err(|compat| {
            load_error(
                ifname,
                libbpf_rs::Error::from(io::Error::other(format!(
                    "{e}; and the build for kernels before 5.18: {compat}"
                ))),
            )
        }),
    }
}

fn load_error(ifname: &str, e: libbpf_rs::Error) -> Error {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        Error::new(
            ErrorKind::Permission,
            format!(
                "loading the XDP program for {ifname} needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN \
                 (or root): run with those capabilities, or let a privileged process load it"
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
