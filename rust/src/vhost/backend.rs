//! vhost-user-net backend on top of `vhost-user-backend`.
//!
//! Queue layout: queue 2i = RX of pair i, 2i+1 = TX of pair i; pair i is served by worker
//! thread i (`queues_per_thread` = 0b11 << 2i), so inside `handle_event` the thread-local vring
//! index is 0 (RX) / 1 (TX) and `thread_id` is the pair index.
//!
//! Extra fds: each worker's `VringEpollHandler` (from `VhostUserDaemon::get_epoll_handlers()`)
//! is handed to [`NetBackend::attach`]; the backend then adds/removes the port's fds with
//! `register_listener`/`unregister_listener`, using tokens above `num_queues` (the handler
//! reserves `0..=num_queues` for vrings and its exit/vring-enabled event).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use log::{debug, error, info, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringEpollHandler, VringRwLock, VringT};
use virtio_queue::QueueT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::datapath::QueuePair;
use super::port::NetPort;
use super::stats::{QueueStats, StatsSnapshot};
use super::virtio_net::{device_features, NetConfigSpace, NetFeatures};

pub type GuestMem = GuestMemoryAtomic<GuestMemoryMmap<()>>;
pub type Vring = VringRwLock<GuestMem>;

/// Thread-local vring indices.
pub const RX_VRING: u16 = 0;
pub const TX_VRING: u16 = 1;
/// Frames moved from the port per RX pass before yielding back to epoll (the port fd is
/// level-triggered, so leftovers wake us again; TX and other events get a turn in between).
pub const RX_BUDGET: usize = 256;

/// Where the backend registers its extra fds. Implemented for the real epoll handler and by
/// test doubles.
pub trait EventRegistrar: Send + Sync {
    fn register(&self, fd: RawFd, ev: EventSet, token: u64) -> io::Result<()>;
    fn unregister(&self, fd: RawFd, ev: EventSet, token: u64) -> io::Result<()>;
}

/// Weak: the epoll handler owns an `Arc` of the backend, the backend must not keep the handler
/// (and its worker thread) alive.
struct EpollRegistrar<T: VhostUserBackend>(Weak<VringEpollHandler<T>>);

impl<T> EventRegistrar for EpollRegistrar<T>
where
    T: VhostUserBackend,
    VringEpollHandler<T>: Send + Sync,
{
    fn register(&self, fd: RawFd, ev: EventSet, token: u64) -> io::Result<()> {
        let h = self
            .0
            .upgrade()
            .ok_or_else(|| io::Error::other("epoll handler gone"))?;
        h.register_listener(fd, ev, token)
    }
    fn unregister(&self, fd: RawFd, ev: EventSet, token: u64) -> io::Result<()> {
        let h = self
            .0
            .upgrade()
            .ok_or_else(|| io::Error::other("epoll handler gone"))?;
        h.unregister_listener(fd, ev, token)
    }
}

#[derive(Clone, Debug)]
pub struct NetBackendConfig {
    pub mac: [u8; 6],
    pub queue_size: usize,
    pub mtu: Option<u16>,
}

struct PairState<P: NetPort> {
    dp: QueuePair<P>,
    events: Option<Arc<dyn EventRegistrar>>,
    rx_listening: bool,
    tx_waiting: bool,
    /// dup of the port's tx-wake fd when it equals the rx fd (epoll refuses the same fd twice).
    tx_wake_dup: Option<OwnedFd>,
}

impl<P: NetPort> PairState<P> {
    fn tx_wake_fd(&self) -> Option<(RawFd, EventSet)> {
        let (fd, ev) = self.dp.port.tx_wake()?;
        Some((self.tx_wake_dup.as_ref().map_or(fd, |d| d.as_raw_fd()), ev))
    }

    fn set_rx_listening(&mut self, on: bool, token: u64) {
        if self.rx_listening == on {
            return;
        }
        let Some(ev) = self.events.as_ref() else {
            return;
        };
        let fd = self.dp.port.rx_fd();
        let r = if on {
            ev.register(fd, EventSet::IN, token)
        } else {
            ev.unregister(fd, EventSet::IN, token)
        };
        match r {
            Ok(()) => self.rx_listening = on,
            Err(e) => warn!(
                "port rx fd {} failed: {e}",
                if on { "register" } else { "unregister" }
            ),
        }
    }

    fn set_tx_waiting(&mut self, on: bool, token: u64) {
        if self.tx_waiting == on {
            return;
        }
        let (Some(ev), Some((fd, set))) = (self.events.clone(), self.tx_wake_fd()) else {
            return;
        };
        let r = if on {
            ev.register(fd, set, token)
        } else {
            ev.unregister(fd, set, token)
        };
        match r {
            Ok(()) => self.tx_waiting = on,
            Err(e) => warn!(
                "port tx-wake fd {} failed: {e}",
                if on { "register" } else { "unregister" }
            ),
        }
    }

    /// Forget registrations (they died with the previous connection's epoll fd).
    fn detach(&mut self) {
        self.events = None;
        self.rx_listening = false;
        self.tx_waiting = false;
    }
}

pub struct NetBackend<P: NetPort> {
    cfg: NetBackendConfig,
    avail_features: u64,
    acked_features: AtomicU64,
    config: Mutex<NetConfigSpace>,
    mem: GuestMem,
    pairs: Vec<Mutex<PairState<P>>>,
    stats: Vec<Arc<QueueStats>>,
    /// The exit eventfds handed to the workers of the current daemon, by descriptor and
    /// kernel id: the event loop takes them with `into_raw_fd` and never closes them,
    /// so [`NetBackend::reclaim_exit_events`] does once the daemon is gone.
    exit_events: Mutex<Vec<(RawFd, u64)>>,
}

impl<P: NetPort + 'static> NetBackend<P> {
    /// One port per queue pair.
    pub fn new(cfg: NetBackendConfig, ports: Vec<P>) -> io::Result<Self> {
        if ports.is_empty() || ports.len() > 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "1..=32 queue pairs",
            ));
        }
        if !cfg.queue_size.is_power_of_two() || cfg.queue_size > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "queue size: power of 2",
            ));
        }
        let n = ports.len() as u16;
        let mut pairs = Vec::new();
        let mut stats = Vec::new();
        for port in ports {
            let st = Arc::new(QueueStats::default());
            let tx_wake_dup = match port.tx_wake() {
                Some((fd, _)) if fd == port.rx_fd() => Some(dup_fd(fd)?),
                _ => None,
            };
            pairs.push(Mutex::new(PairState {
                dp: QueuePair::new(port, st.clone()),
                events: None,
                rx_listening: false,
                tx_waiting: false,
                tx_wake_dup,
            }));
            stats.push(st);
        }
        Ok(NetBackend {
            avail_features: device_features(n, cfg.mtu.is_some()),
            config: Mutex::new(NetConfigSpace::new(cfg.mac, n, cfg.mtu)),
            cfg,
            acked_features: AtomicU64::new(0),
            mem: GuestMemoryAtomic::new(GuestMemoryMmap::new()),
            pairs,
            stats,
            exit_events: Mutex::new(Vec::new()),
        })
    }

    /// The guest-memory handle to give to `VhostUserDaemon::new`: the daemon swaps the mapping
    /// inside it on SET_MEM_TABLE, so the backend always sees the current one.
    pub fn memory(&self) -> &GuestMem {
        &self.mem
    }

    pub fn queue_pairs(&self) -> usize {
        self.pairs.len()
    }

    pub fn stats(&self, pair: usize) -> StatsSnapshot {
        self.stats[pair].snapshot()
    }

    pub fn with_port<R>(&self, pair: usize, f: impl FnOnce(&mut P) -> R) -> R {
        f(&mut self.lock_pair(pair).dp.port)
    }

    fn lock_pair(&self, i: usize) -> MutexGuard<'_, PairState<P>> {
        // A panic in a worker must not wedge every later connection.
        self.pairs[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn port_rx_token(&self) -> u64 {
        (self.pairs.len() * 2 + 1) as u64
    }

    fn tx_wake_token(&self) -> u64 {
        (self.pairs.len() * 2 + 2) as u64
    }

    /// Connect the backend to a (new) daemon's worker threads. Call after
    /// `VhostUserDaemon::new` and before `start`/`start_client`; each new connection needs a
    /// new daemon, hence a new attach.
    pub fn attach_registrars(&self, regs: Vec<Arc<dyn EventRegistrar>>) {
        for (i, r) in regs.into_iter().enumerate().take(self.pairs.len()) {
            let mut p = self.lock_pair(i);
            p.detach();
            p.events = Some(r);
        }
    }

    /// Closes the exit eventfds of a daemon that has been dropped (its workers joined,
    /// their epoll closed): `vhost-user-backend` leaks them, one per worker and
    /// connection. Only a descriptor that is still the same eventfd is closed (on a
    /// kernel that does not report eventfd ids, nothing is).
    pub fn reclaim_exit_events(&self) {
        let taken =
            std::mem::take(&mut *self.exit_events.lock().unwrap_or_else(|p| p.into_inner()));
        for (fd, id) in taken {
            crate::sys::close_abandoned_eventfd(fd, id);
        }
    }

    /// Drop per-connection state after the daemon of a finished connection has been dropped
    /// (its epoll fds and registrations are gone with it): features, listener flags, and the
    /// guest memory mapping (so the old VM's memory is unmapped now, not at the next
    /// SET_MEM_TABLE).
    pub fn disconnect(&self) {
        for i in 0..self.pairs.len() {
            let mut p = self.lock_pair(i);
            p.detach();
            p.dp.features = NetFeatures::default();
        }
        self.acked_features.store(0, Ordering::Relaxed);
        self.mem.lock().unwrap().replace(GuestMemoryMmap::new());
    }

    fn rx_path(&self, p: &mut PairState<P>, vring: &Vring) {
        let token = self.port_rx_token();
        let mut v = vring.get_mut();
        if !v.is_enabled() || !v.get_queue().ready() {
            // Stopped/disabled ring: stop polling the port or the level-triggered fd spins.
            p.set_rx_listening(false, token);
            return;
        }
        let mem = self.mem.memory();
        match p.dp.process_rx(&*mem, v.get_queue_mut(), RX_BUDGET) {
            Ok(out) => {
                if out.notify {
                    if let Err(e) = v.signal_used_queue() {
                        warn!("rx: signal failed: {e}");
                    }
                }
                // No guest buffers: leave the frames in the port and wait for the guest's
                // RX kick (notifications were re-enabled) instead of the port fd.
                p.set_rx_listening(!out.no_buffers, token);
            }
            Err(e) => {
                // Broken ring (bad addresses): never return Err from handle_event, that kills
                // the worker thread. Stop polling until the ring is set up again.
                error!("rx: queue error: {e}");
                p.set_rx_listening(false, token);
            }
        }
    }

    fn tx_path(&self, p: &mut PairState<P>, vring: &Vring) {
        let token = self.tx_wake_token();
        let mut v = vring.get_mut();
        if !v.is_enabled() || !v.get_queue().ready() {
            p.set_tx_waiting(false, token);
            return;
        }
        let mem = self.mem.memory();
        match p.dp.process_tx(&*mem, v.get_queue_mut()) {
            Ok(out) => {
                if out.notify {
                    if let Err(e) = v.signal_used_queue() {
                        warn!("tx: signal failed: {e}");
                    }
                }
                p.set_tx_waiting(out.port_full, token);
            }
            Err(e) => {
                error!("tx: queue error: {e}");
                p.set_tx_waiting(false, token);
            }
        }
    }
}

/// Register the daemon's epoll handlers (one per worker thread = queue pair).
pub fn attach_daemon_handlers<P: NetPort + 'static>(
    backend: &Arc<NetBackend<P>>,
    handlers: &[Arc<VringEpollHandler<Arc<NetBackend<P>>>>],
) {
    let regs: Vec<Arc<dyn EventRegistrar>> = handlers
        .iter()
        .map(|h| Arc::new(EpollRegistrar(Arc::downgrade(h))) as Arc<dyn EventRegistrar>)
        .collect();
    backend.attach_registrars(regs);
}

fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    crate::sys::dup_fd(fd)
}

impl<P: NetPort + 'static> VhostUserBackend for NetBackend<P> {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.pairs.len() * 2
    }

    fn max_queue_size(&self) -> usize {
        self.cfg.queue_size
    }

    fn features(&self) -> u64 {
        // Without PROTOCOL_FEATURES the frontend never sends SET_VRING_ENABLE / protocol
        // features (no MQ, no CONFIG) and the handler enables all rings on SET_FEATURES.
        self.avail_features | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        self.acked_features.store(features, Ordering::Relaxed);
        let f = NetFeatures::from_acked(features);
        info!("acked features {features:#x}: {f:?}");
        for i in 0..self.pairs.len() {
            self.lock_pair(i).dp.features = f;
        }
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // No CONFIG: frontends keep virtio-net's config space themselves (QEMU warns
        // about a backend that offers it). No CONFIGURE_MEM_SLOTS: QEMU keeps one
        // vhost device per queue pair, and with it each of them adds the guest's memory
        // regions again (ADD_MEM_REG), which the handler refuses as overlapping; with
        // SET_MEM_TABLE each one replaces the table, which is what a shared mapping
        // needs.
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        // The handler has already disabled every vring and removed the kick fds.
        for i in 0..self.pairs.len() {
            let mut p = self.lock_pair(i);
            p.set_rx_listening(false, self.port_rx_token());
            p.set_tx_waiting(false, self.tx_wake_token());
            p.dp.features = NetFeatures::default();
        }
        self.acked_features.store(0, Ordering::Relaxed);
    }

    fn set_event_idx(&self, enabled: bool) {
        // The handler already applied it to every vring's Queue.
        debug!("event idx: {enabled}");
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        self.config.lock().unwrap().read(offset, size)
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        self.config
            .lock()
            .unwrap()
            .write(offset, buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    fn update_memory(&self, _mem: GuestMem) -> io::Result<()> {
        // Same GuestMemoryAtomic as self.mem (see `memory()`), already updated.
        Ok(())
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        (0..self.pairs.len()).map(|i| 0b11u64 << (2 * i)).collect()
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // A fresh eventfd for every worker of every daemon: the event loop never reads it, a
        // reused one would still be signalled and kill the next connection's workers at once.
        let (consumer, notifier) =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
                .map_err(|e| error!("exit eventfd: {e}"))
                .ok()?;
        let fd = consumer.as_raw_fd();
        if let Some(id) = crate::sys::eventfd_id(fd) {
            self.exit_events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((fd, id));
        }
        Some((consumer, notifier))
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        // GET_VRING_BASE: ring is already unready; taking the pair lock waits for an in-flight
        // handle_event on that pair, then stop watching the port for it.
        let pair = queue_index as usize / 2;
        if pair < self.pairs.len() {
            let mut p = self.lock_pair(pair);
            if queue_index % 2 == 0 {
                p.set_rx_listening(false, self.port_rx_token());
            } else {
                p.set_tx_waiting(false, self.tx_wake_token());
            }
        }
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        thread_id: usize,
    ) -> io::Result<()> {
        if thread_id >= self.pairs.len() || vrings.len() < 2 {
            return Ok(());
        }
        if evset.intersects(EventSet::ERROR | EventSet::HANG_UP)
            && u64::from(device_event) >= self.port_rx_token()
        {
            warn!("pair {thread_id}: port fd error/hangup {evset:?}");
        }
        let mut p = self.lock_pair(thread_id);
        let ev = u64::from(device_event);
        match device_event {
            // Guest posted RX buffers, or the RX vring was just enabled.
            RX_VRING => self.rx_path(&mut p, &vrings[0]),
            TX_VRING => self.tx_path(&mut p, &vrings[1]),
            _ if ev == self.port_rx_token() => self.rx_path(&mut p, &vrings[0]),
            _ if ev == self.tx_wake_token() => {
                p.set_tx_waiting(false, self.tx_wake_token());
                self.tx_path(&mut p, &vrings[1]);
            }
            _ => warn!("unexpected event {device_event}"),
        }
        Ok(())
    }
}
