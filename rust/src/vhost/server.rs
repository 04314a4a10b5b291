//! Serving frontends, one connection after another: one `VhostUserDaemon` per
//! connection, one long-lived backend (and its AF_XDP sockets) for all of them.
//!
//! Why a new daemon per connection: the daemon's handler keeps ownership, acked
//! features, vring state and mappings across connections, and a second SET_OWNER on
//! the same daemon fails ("already claimed"), which would end the new connection at
//! once. Its worker threads are told to exit when a connection ends.
//!
//! The frontend's connection is ours (accepted on the public socket, or made in
//! client mode) and is relayed to the daemon (see [`super::relay`]), which accepts the
//! other end on a private abstract socket.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;

use super::backend::{attach_daemon_handlers, NetBackend};
use super::control::Control;
use super::port::NetPort;
use super::relay::Relay;
use crate::error::{Error, ErrorKind, Result};

#[derive(Clone, Debug)]
pub enum Mode {
    /// We listen, the frontend connects (QEMU `-chardev socket,path=...` without
    /// `server=on`, with `reconnect=1` to come back after a restart of ours). The
    /// socket is made once and serves every connection, so the file never goes
    /// missing between connections.
    Server(PathBuf),
    /// The frontend listens (QEMU `-chardev socket,path=...,server=on,wait=off`); we
    /// connect, and connect again whenever the connection ends.
    Client(PathBuf),
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Os, format!("{what}: {e}"))
}

/// The public socket of server mode.
struct Public {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we made: only that file is removed at the
    /// end (another backend may have replaced it meanwhile).
    file: Option<(u64, u64)>,
}

impl Drop for Public {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if Some((m.dev(), m.ino())) == self.file {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The sockets a device serves on.
pub(super) struct Endpoints {
    public: Option<Public>,
    /// Where the daemon accepts the relayed connections: an abstract socket, private
    /// to this process by its name.
    daemon: Listener,
    daemon_addr: SocketAddr,
}

static DEVICES: AtomicU64 = AtomicU64::new(0);

/// Binds the sockets: in server mode the public one at its path (a stale socket
/// file is replaced: the caller checked that nobody listens there).
pub(super) fn listen(mode: &Mode) -> Result<Endpoints> {
    let name = format!(
        "afxdp-vhost-{}-{}",
        std::process::id(),
        DEVICES.fetch_add(1, Ordering::Relaxed)
    );
    let daemon_addr = SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Error::os("naming a private socket", e))?;
    let daemon = UnixListener::bind_addr(&daemon_addr)
        .map_err(|e| Error::os("binding a private socket", e))?;
    let public = match mode {
        Mode::Client(_) => None,
        Mode::Server(path) => {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .map_err(|e| Error::os(format!("cannot listen on {}", path.display()), e))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| Error::os("setting the socket non-blocking", e))?;
            let file = std::fs::symlink_metadata(path)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            Some(Public {
                listener,
                path: path.clone(),
                file,
            })
        }
    };
    Ok(Endpoints {
        public,
        daemon: Listener::from(daemon),
        daemon_addr,
    })
}

/// Waits until `fd` is readable or a stop is requested, for at most `ms` (-1: no
/// limit). Returns false when stopping.
fn wait_for(control: &Control, fd: Option<BorrowedFd<'_>>, ms: i32) -> bool {
    let mut fds = vec![control.wake_fd()];
    fds.extend(fd);
    // An error of poll(2) here (none is expected) is treated like a wake-up: the
    // caller looks at the stop flag and tries again.
    let _ = crate::sys::xsk::poll_any(&fds, libc::POLLIN, ms);
    !control.stopping()
}

/// The next frontend's connection; `None` when a stop was requested.
fn next_frontend(mode: &Mode, ends: &Endpoints, control: &Control) -> Option<UnixStream> {
    if control.stopping() {
        return None;
    }
    match (mode, ends.public.as_ref()) {
        (Mode::Server(_), Some(p)) => loop {
            if !wait_for(control, Some(p.listener.as_fd()), -1) {
                return None;
            }
            match p.listener.accept() {
                Ok((s, _)) => return Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    control.event(format!("accepting a frontend failed: {e}"));
                    if !wait_for(control, None, 100) {
                        return None;
                    }
                }
            }
        },
        (Mode::Client(path), _) => {
            let mut delay = 50;
            let mut said = false;
            loop {
                match UnixStream::connect(path) {
                    Ok(s) => return Some(s),
                    Err(e) => {
                        if !said {
                            control.event(format!(
                                "waiting for a frontend to listen on {}: {e}",
                                path.display()
                            ));
                            said = true;
                        }
                        if !wait_for(control, None, delay) {
                            return None;
                        }
                        delay = (delay * 2).min(1000);
                    }
                }
            }
        }
        (Mode::Server(_), None) => unreachable!("server mode always has a public socket"),
    }
}

/// Serves connections until a stop is requested.
pub(super) fn serve<P: NetPort + 'static>(
    backend: Arc<NetBackend<P>>,
    mode: &Mode,
    mut ends: Endpoints,
    control: &Control,
) -> Result<()> {
    let mut number = 0u64;
    while let Some(front) = next_frontend(mode, &ends, control) {
        number += 1;
        serve_connection(&backend, &mut ends, front, control, number)?;
    }
    Ok(())
}

/// Serves one frontend connection as [`VhostUser`](super::VhostUser) serves each of
/// its own (relayed to a daemon of its own, with its worker threads) until it ends,
/// and says how it ended. For a test or a fuzz target that drives a backend over a
/// connection of its own: it returns only once the frontend's end is closed (nothing
/// else stops it).
pub fn serve_one<P: NetPort + 'static>(
    backend: Arc<NetBackend<P>>,
    frontend: UnixStream,
) -> Result<String> {
    let control = Control::new()?;
    let mut ends = listen(&Mode::Client(PathBuf::new()))?;
    serve_connection(&backend, &mut ends, frontend, &control, 1)?;
    Ok(control.events(0).pop().unwrap_or_default())
}

/// One connection: a new daemon, the relay, until the frontend goes; an error only
/// when the daemon or the relay could not start.
fn serve_connection<P: NetPort + 'static>(
    backend: &Arc<NetBackend<P>>,
    ends: &mut Endpoints,
    front: UnixStream,
    control: &Control,
    number: u64,
) -> Result<()> {
    let mut daemon = VhostUserDaemon::new(
        "afxdp-vhost-req".to_string(),
        backend.clone(),
        backend.memory().clone(),
    )
    .map_err(|e| failed("starting the vhost-user daemon", e))?;
    // The backend registers its sockets with this daemon's worker threads: attach
    // before any message can enable a vring.
    attach_daemon_handlers(backend, &daemon.get_epoll_handlers());
    let started = UnixStream::connect_addr(&ends.daemon_addr)
        .map_err(|e| e.to_string())
        .and_then(|to_daemon| {
            daemon.start(&mut ends.daemon).map_err(|e| e.to_string())?;
            Relay::start(front, to_daemon).map_err(|e| e.to_string())
        });
    let relay = match started {
        Ok(r) => r,
        Err(e) => {
            for h in daemon.get_epoll_handlers() {
                h.send_exit_event();
            }
            drop(daemon);
            backend.reclaim_exit_events();
            backend.disconnect();
            return Err(failed("serving a frontend", e));
        }
    };
    control.connected(daemon.shutdown_handle());
    control.event(format!("frontend connected (connection {number})"));
    let how = match daemon.wait() {
        Ok(()) => "frontend disconnected".to_string(),
        // What a VMM that exits, or a guest powered off, looks like.
        Err(vhost_user_backend::Error::HandleRequest(
            vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
        )) => "frontend disconnected".to_string(),
        Err(e) => format!("connection ended: {e}"),
    };
    // Stop the worker threads, then drop the daemon (which joins them).
    for h in daemon.get_epoll_handlers() {
        h.send_exit_event();
    }
    drop(daemon);
    backend.reclaim_exit_events();
    let relayed = relay.join();
    backend.disconnect();
    control.disconnected();
    match relayed {
        Ok(()) => control.event(format!("{how} (connection {number})")),
        Err(e) => control.event(format!("{how} (connection {number}); relay: {e}")),
    }
    Ok(())
}
