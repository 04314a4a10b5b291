//! The few bpf(2) commands the core needs on objects it did not create: update and
//! delete XSKMAP entries, open and pin objects in bpffs, and read map and link
//! information. Through the raw system call, so they work without the loader feature
//! (for users who bring their own XDP program).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `bpf_map_info.type` of an XSKMAP.
pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `bpf_link_info.type` of an XDP link.
pub const BPF_LINK_TYPE_XDP: u32 = 6;

/// The part of `union bpf_attr` for BPF_MAP_*_ELEM.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The part of `union bpf_attr` for BPF_OBJ_PIN and BPF_OBJ_GET.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// The part of `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The part of `union bpf_attr` for BPF_*_GET_FD_BY_ID and BPF_*_GET_NEXT_ID.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The part of `union bpf_attr` for BPF_PROG_TEST_RUN.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// bpf(cmd, attr): returns the non-negative result or the error.
///
/// # Safety
/// `attr` must be the attribute structure of `cmd`, and every pointer in it valid for
/// what the command does with it during the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i32> {
    // SAFETY: the caller guarantees attr matches cmd; the size passed is attr's own,
    // and the kernel accepts a prefix of union bpf_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}

/// Sets `key` of `map` to `value` (BPF_ANY). Both must be exactly the map's key and
/// value sizes (the kernel reads that many bytes).
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let info = map_info(map)?;
    if key.len() != info.key_size as usize || value.len() != info.value_size as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: BPF_MAP_UPDATE_ELEM takes ElemAttr; key and value point at live buffers
    // of the map's key and value sizes (checked above).
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// Reads `key` of `map` into `value` (both exactly the map's key and value sizes);
/// false when the map has no such key.
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let info = map_info(map)?;
    if key.len() != info.key_size as usize || value.len() != info.value_size as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: BPF_MAP_LOOKUP_ELEM takes ElemAttr; key points at a live buffer of the
    // key size and value at a writable one of the value size (checked above).
    match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The 4-byte keys of a hash `map`, in the kernel's order.
pub fn map_keys_u32(map: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut keys = Vec::new();
    let mut next = 0u32;
    loop {
        let prev = keys.last().copied();
        let mut attr = ElemAttr {
            map_fd: map.as_raw_fd() as u32,
            // No key: the first one.
            key: prev.as_ref().map_or(0, |k| k as *const u32 as u64),
            value: &mut next as *mut u32 as u64,
            ..Default::default()
        };
        // SAFETY: BPF_MAP_GET_NEXT_KEY takes ElemAttr with `next_key` where the value
        // pointer of the other commands is; key (when set) and next_key point at live
        // 4-byte buffers, the key size of the maps this is used on.
        match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => keys.push(next),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
        if keys.len() > 1 << 16 {
            return Err(io::Error::other("map keys do not end"));
        }
    }
}

/// Deletes `key` (exactly the map's key size) of `map`.
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    let info = map_info(map)?;
    if key.len() != info.key_size as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: BPF_MAP_DELETE_ELEM takes ElemAttr; key points at a live buffer of the
    // map's key size (checked above).
    unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) }.map(drop)
}

/// Sets the 4-byte `key` of `map` to the 4-byte `value` (BPF_ANY).
pub fn map_update_u32(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    map_update(map, &key.to_ne_bytes(), &value.to_ne_bytes())
}

/// Deletes the 4-byte `key` of `map`.
pub fn map_delete_u32(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    map_delete(map, &key.to_ne_bytes())
}

/// Pins the object `fd` at `path` on a bpf filesystem.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: BPF_OBJ_PIN takes ObjAttr; pathname is a NUL-terminated string.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }.map(drop)
}

/// Opens the object pinned at `path`.
pub fn obj_get(path: &CStr) -> io::Result<OwnedFd> {
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: BPF_OBJ_GET takes ObjAttr; pathname is a NUL-terminated string.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut attr) }?;
    // SAFETY: BPF_OBJ_GET returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The first bytes of an object's info (`bpf_map_info`, `bpf_link_info`, ...), as
/// 32-bit words.
fn info_words(fd: BorrowedFd<'_>) -> io::Result<[u32; 64]> {
    info_words_with(fd, [0u32; 64])
}

/// Like [`info_words`], with some input fields already set in `info` (pointers and
/// counts of arrays the kernel fills).
fn info_words_with(fd: BorrowedFd<'_>, mut info: [u32; 64]) -> io::Result<[u32; 64]> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD takes InfoAttr; info points at info_len writable,
    // zeroed bytes (the kernel requires bytes past its own structure to be zero).
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// The type of the map `fd` (`bpf_map_info.type`).
pub fn map_type(fd: BorrowedFd<'_>) -> io::Result<u32> {
    info_words(fd).map(|w| w[0])
}

/// A NUL-padded name in info words `words` (BPF_OBJ_NAME_LEN = 16 bytes).
fn name_at(words: &[u32]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What the kernel says about a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub name: String,
}

/// Reads `bpf_map_info` of the map `fd`.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    // bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16]
    let w = info_words(fd)?;
    Ok(MapInfo {
        map_type: w[0],
        id: w[1],
        key_size: w[2],
        value_size: w[3],
        max_entries: w[4],
        name: name_at(&w[6..10]),
    })
}

/// What the kernel says about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub name: String,
    /// The maps it uses (at most 16 are listed).
    pub map_ids: Vec<u32>,
}

/// Reads `bpf_prog_info` of the program `fd`, with its map ids.
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // bpf_prog_info: type, id, tag[8], jited_prog_len, xlated_prog_len,
    // jited_prog_insns (u64), xlated_prog_insns (u64), load_time (u64),
    // created_by_uid, nr_map_ids (word 13), map_ids (u64, words 14-15), name[16]
    // (words 16-19).
    let mut ids = [0u32; 16];
    let mut info = [0u32; 64];
    info[13] = ids.len() as u32;
    let ptr = ids.as_mut_ptr() as u64;
    info[14] = ptr as u32;
    info[15] = (ptr >> 32) as u32;
    if cfg!(target_endian = "big") {
        info.swap(14, 15);
    }
    let w = info_words_with(fd, info)?;
    let n = (w[13] as usize).min(ids.len());
    Ok(ProgInfo {
        id: w[1],
        name: name_at(&w[16..20]),
        map_ids: ids[..n].to_vec(),
    })
}

/// Which kind of object [`fd_by_id`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Prog,
    Map,
    Link,
}

/// Opens the program, map or link with this id.
pub fn fd_by_id(kind: Object, id: u32) -> io::Result<OwnedFd> {
    let cmd = match kind {
        Object::Prog => BPF_PROG_GET_FD_BY_ID,
        Object::Map => BPF_MAP_GET_FD_BY_ID,
        Object::Link => BPF_LINK_GET_FD_BY_ID,
    };
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: the *_GET_FD_BY_ID commands take IdAttr, which holds no pointer.
    let fd = unsafe { bpf(cmd, &mut attr) }?;
    // SAFETY: the command returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ids of every BPF link in the system, in order.
pub fn link_ids() -> impl Iterator<Item = u32> {
    let mut start = 0u32;
    std::iter::from_fn(move || {
        let mut attr = IdAttr {
            id: start,
            ..Default::default()
        };
        // SAFETY: BPF_LINK_GET_NEXT_ID takes IdAttr, which holds no pointer.
        unsafe { bpf(BPF_LINK_GET_NEXT_ID, &mut attr) }.ok()?;
        start = attr.next_id;
        Some(start)
    })
}

/// The processes that hold a descriptor of BPF link `id` (pid and command name), as
/// far as /proc shows them.
pub fn link_holders(id: u32) -> Vec<(u32, String)> {
    let want = format!("link_id:\t{id}\n");
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.contains(&want)));
        if holds {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// The part of `union bpf_attr` for BPF_LINK_DETACH.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// Detaches BPF link `link` from its hook (the program stops running there; the link
/// object lives on, detached, while descriptors of it are open).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: link.as_raw_fd() as u32,
    };
    // SAFETY: BPF_LINK_DETACH takes LinkDetachAttr, which holds no pointer.
    unsafe { bpf(BPF_LINK_DETACH, &mut attr) }.map(drop)
}

/// What the kernel says about a BPF link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    /// For an XDP link: the interface index it is attached to, 0 once detached.
    pub xdp_ifindex: u32,
}

/// Reads `bpf_link_info` of the link `fd`.
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // bpf_link_info: type, id, prog_id, then a union aligned to 8 bytes (offset 16)
    // whose xdp member starts with the ifindex.
    let w = info_words(fd)?;
    Ok(LinkInfo {
        link_type: w[0],
        id: w[1],
        prog_id: w[2],
        xdp_ifindex: w[4],
    })
}

/// Whether `fd` is a BPF link (rather than a map, a program or anything else).
pub fn is_link(fd: BorrowedFd<'_>) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-link")
}

/// Runs program `prog` `repeat` times on `packet` in the kernel (BPF_PROG_TEST_RUN);
/// returns its verdict and the mean time of one run in nanoseconds.
pub fn prog_test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
    let mut out = vec![0u8; packet.len() + 512];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: BPF_PROG_TEST_RUN takes TestRunAttr; data_in points at data_size_in
    // readable bytes and data_out at data_size_out writable ones, alive for the call.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok((attr.retval, attr.duration))
}
