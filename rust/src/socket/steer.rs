//! Getting packets to the socket: the XDP program or XSKMAP named by [`Steering`],
//! attached before bind and registered after it, and unregistered when the socket
//! closes.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use super::config::Steering;
use super::watch::Feed;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::Rule;
#[cfg(feature = "loader")]
use crate::program::{self, XdpProgram};
use crate::xskmap::XskMap;

/// Where the socket is registered.
enum Target {
    #[cfg(feature = "loader")]
    Program(Arc<XdpProgram>),
    Map(Arc<XskMap>),
    None,
}

/// The socket's entry in an XSKMAP, removed on drop (only if it was made).
pub(super) struct Registration {
    target: Target,
    queue: u32,
    registered: bool,
    /// Which packets of the queue the socket takes (empty: all).
    rules: Vec<Rule>,
    /// The program stamps each packet with the time it reached XDP.
    stamp: bool,
    /// The process generation it was made in: a fork child never removes its parent's
    /// entry.
    generation: u64,
}

impl Registration {
    /// Attaches what `steering` needs before the socket is bound: the default program
    /// (shared by this process's sockets on the interface) for a socket with an rx
    /// ring, so that "another program is attached" is reported before anything is set
    /// up on the queue.
    #[cfg_attr(not(feature = "loader"), allow(unused_variables))]
    pub(super) fn prepare(
        steering: &Steering,
        ifname: &str,
        ifindex: u32,
        queue: u32,
        receives: bool,
    ) -> Result<Self> {
        let target = match steering {
            #[cfg(feature = "loader")]
            Steering::DefaultProgram(mode) if receives => {
                Target::Program(program::attach(ifname, ifindex, *mode)?)
            }
            Steering::Map(map) => Target::Map(Arc::clone(map)),
            _ => Target::None,
        };
        Ok(Registration {
            target,
            queue,
            registered: false,
            rules: Vec::new(),
            stamp: false,
            generation: crate::sys::process_generation(),
        })
    }

    /// Puts the bound socket in the map, so that packets of its queue come to it: those
    /// that match one of `rules` (set first), or all without rules; with `stamp`, each
    /// with the time it reached XDP.
    pub(super) fn register(
        &mut self,
        socket: BorrowedFd<'_>,
        rules: &[Rule],
        stamp: bool,
    ) -> Result<()> {
        self.stamp = stamp;
        self.set_rules(rules)?;
        match &self.target {
            #[cfg(feature = "loader")]
            Target::Program(p) => p.register(self.queue, socket)?,
            Target::Map(m) => m.set(self.queue, socket)?,
            Target::None => return Ok(()),
        }
        self.registered = true;
        Ok(())
    }

    /// Changes which packets of the queue the socket takes (empty: all), at once.
    pub(super) fn set_rules(&mut self, rules: &[Rule]) -> Result<()> {
        match &self.target {
            #[cfg(feature = "loader")]
            Target::Program(p) => p.set_rules(self.queue, rules, self.stamp)?,
            _ if rules.is_empty() && !self.stamp => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "a match ({}) or timestamps need afxdp_rs's XDP program: they cannot \
                         be applied to a program someone else attached, nor to a socket \
                         that only sends",
                        crate::flow::describe(rules)
                    ),
                ))
            }
        }
        self.rules = rules.to_vec();
        Ok(())
    }

    /// Which packets of the queue the socket takes (empty: all).
    pub(super) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The default program, if the socket uses it.
    #[cfg(feature = "loader")]
    pub(super) fn program(&self) -> Option<&Arc<XdpProgram>> {
        match &self.target {
            Target::Program(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the default program runs in native (driver) mode: then packets reach
    /// the socket no larger than the interface's MTU (in skb mode, after GRO, they can
    /// be superpackets; with someone else's program this process cannot tell).
    pub(super) fn native_mode(&self) -> bool {
        #[cfg(feature = "loader")]
        if let Target::Program(p) = &self.target {
            return p.mode() == program::AttachMode::Native;
        }
        false
    }

    /// Whether the program runs in skb (generic) mode, as far as this process knows.
    pub(super) fn skb_mode(&self) -> bool {
        #[cfg(feature = "loader")]
        if let Target::Program(p) = &self.target {
            return p.mode() == program::AttachMode::Skb;
        }
        false
    }

    /// What a waiter checks to tell that packets stopped coming: the default
    /// program's link and the links held for the socket.
    pub(super) fn feeds(&self, held: &[Arc<std::os::fd::OwnedFd>]) -> Vec<Feed> {
        #[cfg_attr(not(feature = "loader"), allow(unused_mut))]
        let mut feeds: Vec<Feed> = held
            .iter()
            .filter(|h| crate::sys::bpf::is_link(h.as_fd()))
            .map(|h| Feed::Link(Arc::downgrade(h)))
            .collect();
        #[cfg(feature = "loader")]
        if let Target::Program(p) = &self.target {
            feeds.push(Feed::Program(Arc::downgrade(p)));
        }
        feeds
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.registered || crate::sys::process_generation() != self.generation {
            return;
        }
        match &self.target {
            #[cfg(feature = "loader")]
            Target::Program(p) => p.unregister(self.queue),
            Target::Map(m) => m.clear(self.queue),
            Target::None => {}
        }
    }
}
