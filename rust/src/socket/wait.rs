//! Waiting for packets, as one policy for every receiver: the Python `recv`, the Rust
//! loops, the Forwarder and the vhost-user ports say only what they wait for (a `look`
//! that takes what arrived, or `None`), and [`Wait`] decides how: sleep in poll(2), or
//! busy-poll (the receive system calls in which the kernel polls the device), what a
//! down link means, how long to linger for a fuller batch. As the kernel's
//! `napi_busy_loop` serves every socket family with the caller's "done?" callback.
//!
//! A wait is made of slices: [`Wait::slice`] waits at most one slice, so that a caller
//! can look at something of its own between them (Ctrl-C in Python, a stop flag in a
//! loop); [`Wait::until`] goes on slice by slice to a deadline.

use std::time::{Duration, Instant};

use super::watch::Watch;
use super::BusyPoll;
use crate::error::{Error, Result};
use crate::sys;

/// What a receive on a down link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLinkDown {
    /// It waits (and returns nothing) until the link is up: a down link is a state.
    #[default]
    Wait,
    /// It fails with [`ErrorKind::LinkDown`](crate::error::ErrorKind::LinkDown) (the
    /// socket stays usable).
    Raise,
}

/// How a receiver waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wait {
    /// Spin on the receive (each empty one a system call in which the kernel polls the
    /// device) instead of sleeping in poll(2): for sockets opened with busy polling.
    pub busy_poll: bool,
    pub on_link_down: OnLinkDown,
    /// After packets came but fewer than a full batch, wait this long for more to
    /// gather (fewer wakeups per packet, up to `linger` more latency).
    pub linger: Duration,
}

/// How often a waiter looks at its caller's own conditions (Ctrl-C, a stop flag) at the
/// latest.
pub const SLICE: Duration = Duration::from_millis(50);

impl Wait {
    /// The wait of a socket opened with `busy_poll` (Some: busy polling).
    pub fn for_socket(busy_poll: Option<BusyPoll>) -> Self {
        Wait {
            busy_poll: busy_poll.is_some(),
            ..Wait::default()
        }
    }

    /// Waits at most `slice` for `look` to take something. `closed` ends a busy-poll
    /// spin early (another thread closed the socket). A detached program or a removed
    /// interface is an error; a down link returns nothing, or fails with
    /// [`OnLinkDown::Raise`] once `look` found nothing.
    pub fn slice<T>(
        &self,
        watch: &Watch,
        slice: Duration,
        closed: impl Fn() -> bool,
        look: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.slice_any(&[watch], slice, closed, look)
    }

    /// [`Wait::slice`] for a receiver of several sockets (a forwarding pair): it wakes
    /// for packets on any of them.
    pub fn slice_any<T>(
        &self,
        watches: &[&Watch],
        slice: Duration,
        closed: impl Fn() -> bool,
        mut look: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let down = || watches.iter().any(|w| w.link().is_down());
        if self.busy_poll && !down() {
            // Each look that finds the ring empty makes the system call in which the
            // kernel polls the device; sleeping would leave the packets to the
            // gro_flush_timeout timer. (While the link is down, the plain wait below
            // looks at it instead.)
            let until = Instant::now() + slice;
            while Instant::now() < until && !down() {
                if let Some(t) = look()? {
                    return Ok(Some(t));
                }
                if closed() {
                    return Ok(None);
                }
                // Let a thread waiting for the socket (send, close) take it.
                std::thread::yield_now();
            }
            // What a plain wait would notice: the program detached.
            for w in watches {
                w.check_program()?;
            }
            return Ok(None);
        }
        match watches {
            [one] => {
                one.wait(libc::POLLIN, Some(slice))?;
            }
            _ => {
                let fds: Vec<_> = watches.iter().map(|w| w.fd()).collect();
                let ms = slice.as_millis().min(i32::MAX as u128) as i32;
                let ready = sys::xsk::poll_any(&fds, libc::POLLIN, ms)
                    .map_err(|e| Error::os("poll on the sockets", e))?;
                if !ready {
                    // Nothing came: what a plain wait notices (the link, the program).
                    for w in watches {
                        w.wait(libc::POLLIN, Some(Duration::ZERO))?;
                    }
                }
            }
        }
        if let Some(t) = look()? {
            return Ok(Some(t));
        }
        for w in watches {
            self.check_link(w)?;
        }
        Ok(None)
    }

    /// Fails when the link was down at the last look and a down link is to raise.
    pub fn check_link(&self, watch: &Watch) -> Result<()> {
        if self.on_link_down == OnLinkDown::Raise && watch.link().is_down() {
            return Err(watch.link_down_error("receiving"));
        }
        Ok(())
    }

    /// Waits slice by slice up to `timeout` (None: for ever) for `look` to take
    /// something, as [`Wait::slice`] does; `stop` is asked between slices.
    pub fn until<T>(
        &self,
        watch: &Watch,
        timeout: Option<Duration>,
        mut stop: impl FnMut() -> bool,
        mut look: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                None => SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            };
            if let Some(t) = self.slice(watch, slice, || false, &mut look)? {
                return Ok(Some(t));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || stop() {
                return Ok(None);
            }
        }
    }

    /// Whether a batch of `got` packets (of at most `max`) should linger for more.
    pub fn lingers(&self, got: u32, max: u32) -> bool {
        got > 0 && got < max && !self.linger.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingering_is_for_a_batch_that_came_but_is_not_full() {
        let w = Wait {
            linger: Duration::from_micros(50),
            ..Wait::default()
        };
        assert!(w.lingers(3, 64));
        assert!(!w.lingers(0, 64), "nothing came: wait, do not linger");
        assert!(!w.lingers(64, 64), "full: hand it out");
        assert!(!Wait::default().lingers(3, 64), "no linger asked for");
    }

    #[test]
    fn busy_polling_follows_the_socket() {
        assert!(!Wait::for_socket(None).busy_poll);
        assert!(Wait::for_socket(Some(BusyPoll::default())).busy_poll);
        assert_eq!(Wait::default().on_link_down, OnLinkDown::Wait);
    }
}
