//! The backend: features, config space, vrings and the extra fds it registers.

use super::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<(bool, RawFd, u64)>>);
impl EventRegistrar for Recorder {
    fn register(&self, fd: RawFd, _ev: EventSet, token: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().push((true, fd, token));
        Ok(())
    }
    fn unregister(&self, fd: RawFd, _ev: EventSet, token: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().push((false, fd, token));
        Ok(())
    }
}

fn vring_for(mem_backend: &super::super::backend::GuestMem, d: &Driver, call: &EventFd) -> Vring {
    let v = Vring::new(mem_backend.clone(), QSIZE).unwrap();
    v.set_queue_size(QSIZE);
    v.set_queue_info(
        d.vq.desc_table_addr().0,
        d.vq.avail_addr().0,
        d.vq.used_addr().0,
    )
    .unwrap();
    v.set_queue_ready(true);
    v.set_enabled(true);
    let f = File::from(crate::sys::dup_fd(call.as_raw_fd()).unwrap());
    v.set_call(Some(f));
    v
}

#[test]
fn backend_loopback_and_listener_wiring() {
    let port = LoopbackPort::new(64, 65535, true).unwrap();
    let rx_fd = port.rx_fd();
    let cfg = NetBackendConfig {
        mac: [2, 0, 0, 0, 0, 1],
        queue_size: 256,
        mtu: None,
    };
    let be = Arc::new(NetBackend::new(cfg, vec![port]).unwrap());
    assert_eq!(be.num_queues(), 2);
    assert_eq!(be.queues_per_thread(), vec![0b11]);
    be.memory().lock().unwrap().replace(new_mem());
    let guard = be.memory().memory();
    let mem: &GuestMemoryMmap = &guard;
    let rec = Arc::new(Recorder::default());
    be.attach_registrars(vec![rec.clone()]);
    be.acked_features(be.features());

    let mut rxd = Driver::new(mem, 0, BUF_BASE);
    let mut txd = Driver::new(mem, 0x8000, 0x20_0000);
    let (rx_call, tx_call) = (
        EventFd::new(EFD_NONBLOCK).unwrap(),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    );
    let vrings = vec![
        vring_for(be.memory(), &rxd, &rx_call),
        vring_for(be.memory(), &txd, &tx_call),
    ];
    let port_token = 3u64; // num_queues + 1

    // RX vring enabled/kicked with no buffers: start watching the port fd.
    be.handle_event(0, EventSet::IN, &vrings, 0).unwrap();
    assert_eq!(
        rec.0.lock().unwrap().as_slice(),
        &[(true, rx_fd, port_token)]
    );

    // Guest sends a frame: it reaches the loopback port, guest TX is notified.
    let f = frame(60, 9);
    let h = txd.tx_packet(&f, &[12, usize::MAX]);
    be.handle_event(1, EventSet::IN, &vrings, 0).unwrap();
    assert_eq!(txd.new_used(), vec![(h.into(), 0)]);
    assert_eq!(tx_call.read().unwrap(), 1);

    // Port fd fires, guest has no RX buffers: frame stays, port fd is unregistered.
    be.handle_event(port_token as u16, EventSet::IN, &vrings, 0)
        .unwrap();
    assert_eq!(be.with_port(0, |p| p.pending()), 1);
    assert_eq!(
        rec.0.lock().unwrap().last(),
        Some(&(false, rx_fd, port_token))
    );
    assert_eq!(be.stats(0).rx_no_buffers, 1);

    // Guest posts buffers and kicks RX: frame delivered with MACs swapped, fd re-registered.
    let bufs = rxd.rx_buffers(4, 2048);
    be.handle_event(0, EventSet::IN, &vrings, 0).unwrap();
    let used = rxd.new_used();
    let (nb, got) = collect_rx(&rxd, &used, &bufs);
    assert_eq!(nb, 1);
    assert_eq!(&got[..6], &f[6..12]);
    assert_eq!(&got[6..12], &f[..6]);
    assert_eq!(&got[12..], &f[12..]);
    assert_eq!(rx_call.read().unwrap(), 1);
    assert_eq!(
        rec.0.lock().unwrap().last(),
        Some(&(true, rx_fd, port_token))
    );

    // GET_VRING_BASE on the RX ring stops port polling.
    be.stop_vring(0).unwrap();
    assert_eq!(
        rec.0.lock().unwrap().last(),
        Some(&(false, rx_fd, port_token))
    );

    let s = be.stats(0);
    assert_eq!((s.tx_packets, s.rx_packets), (1, 1));
}

#[test]
fn backend_tx_wake_registration() {
    let port = LoopbackPort::new(1, 65535, false).unwrap();
    let wake_fd = port.tx_wake().unwrap().0;
    let cfg = NetBackendConfig {
        mac: [2, 0, 0, 0, 0, 1],
        queue_size: 256,
        mtu: None,
    };
    let be = Arc::new(NetBackend::new(cfg, vec![port]).unwrap());
    be.memory().lock().unwrap().replace(new_mem());
    let guard = be.memory().memory();
    let mem: &GuestMemoryMmap = &guard;
    let rec = Arc::new(Recorder::default());
    be.attach_registrars(vec![rec.clone()]);
    let rxd = Driver::new(mem, 0, BUF_BASE);
    let mut txd = Driver::new(mem, 0x8000, 0x20_0000);
    let (c1, c2) = (
        EventFd::new(EFD_NONBLOCK).unwrap(),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    );
    let vrings = vec![
        vring_for(be.memory(), &rxd, &c1),
        vring_for(be.memory(), &txd, &c2),
    ];
    txd.tx_packet(&frame(60, 1), &[usize::MAX]);
    txd.tx_packet(&frame(60, 2), &[usize::MAX]);
    be.handle_event(1, EventSet::IN, &vrings, 0).unwrap();
    assert_eq!(txd.new_used().len(), 1);
    assert_eq!(rec.0.lock().unwrap().last(), Some(&(true, wake_fd, 4)));
    be.with_port(0, |p| p.drain());
    be.handle_event(4, EventSet::IN, &vrings, 0).unwrap();
    assert_eq!(txd.new_used().len(), 1);
    assert_eq!(rec.0.lock().unwrap().last(), Some(&(false, wake_fd, 4)));
}

#[test]
fn backend_config_and_features() {
    use vhost::vhost_user::message::VhostUserProtocolFeatures as P;
    let ports = vec![plain_port(), plain_port()];
    let cfg = NetBackendConfig {
        mac: [2, 0, 0, 0, 0, 7],
        queue_size: 1024,
        mtu: Some(9000),
    };
    let be = NetBackend::new(cfg, ports).unwrap();
    assert_eq!(be.num_queues(), 4);
    assert_eq!(be.queues_per_thread(), vec![0b0011, 0b1100]);
    let c = be.get_config(0, 12);
    assert_eq!(&c[..6], &[2, 0, 0, 0, 0, 7]);
    assert_eq!(u16::from_le_bytes([c[8], c[9]]), 2);
    assert_eq!(u16::from_le_bytes([c[10], c[11]]), 9000);
    be.set_config(0, &[2, 1, 1, 1, 1, 1]).unwrap();
    assert_eq!(&be.get_config(0, 6)[..], &[2, 1, 1, 1, 1, 1]);
    assert!(be.set_config(8, &[1, 0]).is_err());
    let pf = be.protocol_features();
    assert!(pf.contains(P::MQ | P::REPLY_ACK));
    assert!(
        !pf.contains(P::CONFIG),
        "QEMU's virtio-net keeps its own config space"
    );
    assert_ne!(
        be.features() & (1 << 30),
        0,
        "VHOST_USER_F_PROTOCOL_FEATURES"
    );
    // fresh exit eventfd per call (a reused, already-signalled one would kill new workers)
    let (c1, _) = be.exit_event(0).unwrap();
    let (c2, _) = be.exit_event(0).unwrap();
    assert_ne!(c1.as_raw_fd(), c2.as_raw_fd());
}
