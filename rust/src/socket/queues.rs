//! A set of queues: sockets on queues `start .. start + count` of one interface (QEMU's
//! `queues=N,start-queue=M`), for whatever serves several queues at once (the
//! Forwarder, the vhost-user backend, `open_queues`, the privileged helper). The range
//! is checked once here, against overflow and the interface's queues, and the sockets'
//! warnings are gathered once, without repeats.

use super::advice::Advice;
use super::{SocketConfig, XskSocket};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::netdev;

/// Queues `start .. start + count` of an interface, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRange {
    start: u32,
    count: u32,
}

impl QueueRange {
    /// The range, checked: at least one queue, no overflow.
    pub fn new(start: u32, count: u32) -> Result<Self> {
        if count == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("queues={count}: use at least one queue"),
            ));
        }
        if start.checked_add(count).is_none() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "start_queue={start} with queues={count} goes past the largest queue \
                     id ({}): use a smaller start or fewer queues",
                    u32::MAX
                ),
            ));
        }
        Ok(QueueRange { start, count })
    }

    /// The range, checked also against the rx queues `ifname` has (where the driver
    /// says how many).
    pub fn on(ifname: &str, start: u32, count: u32) -> Result<Self> {
        let range = Self::new(start, count)?;
        netdev::if_index(ifname)?;
        if let Some((rx, _)) = netdev::if_queue_count(ifname) {
            range.check_within(ifname, rx)?;
        }
        Ok(range)
    }

    /// Fails unless every queue of the range is below `have`.
    pub fn check_within(&self, ifname: &str, have: u32) -> Result<()> {
        if self.end() <= have {
            return Ok(());
        }
        let plural = if have == 1 { "" } else { "s" };
        let asked = if self.count == 1 {
            format!("queue {}", self.start)
        } else {
            format!("queues {}..{}", self.start, self.end() - 1)
        };
        let fit = if self.start < have {
            format!(
                "ask for at most {} from queue {}",
                have - self.start,
                self.start
            )
        } else {
            format!("start at a queue below {have}")
        };
        Err(Error::new(
            ErrorKind::InvalidQueue,
            format!(
                "{asked} of {ifname}: it has {have} rx queue{plural} (0..{}); {fit}",
                have.saturating_sub(1)
            ),
        ))
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// One past the last queue.
    pub fn end(&self) -> u32 {
        self.start + self.count
    }

    /// The queue ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> {
        self.start..self.end()
    }
}

/// Advice gathered from several sockets, each condition once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warnings {
    pub advice: Vec<Advice>,
    pub offload_changes: Vec<String>,
}

impl Warnings {
    /// Adds what `sock` found on its interface and what it turned off.
    pub fn gather(&mut self, sock: &XskSocket) {
        self.add(sock.warnings(), sock.offload_changes());
    }

    /// Adds what another set gathered.
    pub fn merge(&mut self, other: &Warnings) {
        self.add(&other.advice, &other.offload_changes);
    }

    fn add(&mut self, advice: &[Advice], changes: &[String]) {
        for w in advice {
            if !self.advice.contains(w) {
                self.advice.push(w.clone());
            }
        }
        self.offload_changes.extend(changes.iter().cloned());
    }
}

/// Where the sockets of a [`QueueSet`] keep their frames.
#[derive(Clone, Copy)]
pub enum UmemPlan<'a> {
    /// Each socket its own UMEM, as its config says.
    PerQueue,
    /// Socket `i` on the UMEM of socket `i` of another set (on another interface: zero
    /// copy forwarding between them), on the frames the config gives.
    Alongside(&'a QueueSet),
}

/// Sockets on a range of queues of one interface.
pub struct QueueSet {
    ifname: String,
    range: QueueRange,
    sockets: Vec<XskSocket>,
    warnings: Warnings,
}

impl QueueSet {
    /// Opens a socket on each queue of `range` of `ifname` with `config`, their frames
    /// as `umem` says. If one cannot be opened, the others are closed and the error is
    /// returned.
    pub fn open(
        ifname: &str,
        range: QueueRange,
        config: &SocketConfig,
        umem: UmemPlan<'_>,
    ) -> Result<Self> {
        let mut set = QueueSet {
            ifname: ifname.to_string(),
            range,
            sockets: Vec::with_capacity(range.count() as usize),
            warnings: Warnings::default(),
        };
        if let UmemPlan::Alongside(other) = umem {
            if other.range.count() != range.count() {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{} queues of {ifname} alongside {} of {}: give both sides as many",
                        range.count(),
                        other.range.count(),
                        other.ifname
                    ),
                ));
            }
        }
        for (i, queue) in range.iter().enumerate() {
            let sock = match umem {
                UmemPlan::PerQueue => XskSocket::open(ifname, queue, config.clone())?,
                UmemPlan::Alongside(other) => XskSocket::open_with(
                    ifname,
                    queue,
                    config.clone(),
                    None,
                    Some(&other.sockets[i]),
                )?,
            };
            set.warnings.gather(&sock);
            set.sockets.push(sock);
        }
        Ok(set)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn range(&self) -> QueueRange {
        self.range
    }

    pub fn sockets(&self) -> &[XskSocket] {
        &self.sockets
    }

    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// The sockets, in queue order, with the warnings gathered from them.
    pub fn into_parts(self) -> (Vec<XskSocket>, Warnings) {
        (self.sockets, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_checked_once() {
        assert!(QueueRange::new(0, 0).is_err());
        let e = QueueRange::new(u32::MAX - 1, 3).unwrap_err();
        assert!(e.to_string().contains("goes past"), "{e}");
        let r = QueueRange::new(2, 3).unwrap();
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!((r.start(), r.count(), r.end()), (2, 3, 5));
    }

    #[test]
    fn a_range_past_the_interface_says_what_fits() {
        let r = QueueRange::new(0, 5).unwrap();
        let e = r.check_within("eth0", 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidQueue);
        let text = e.to_string();
        assert!(
            text.contains("queues 0..4 of eth0: it has 1 rx queue (0..0)"),
            "{text}"
        );
        assert!(text.contains("ask for at most 1 from queue 0"), "{text}");
        let e = QueueRange::new(4, 1)
            .unwrap()
            .check_within("eth0", 2)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("queue 4 of eth0: it has 2 rx queues (0..1); start at a queue below 2"),
            "{e}"
        );
        assert!(QueueRange::new(1, 1)
            .unwrap()
            .check_within("eth0", 2)
            .is_ok());
    }
}
