//! Faults a test injects on connections through the control plane: every client connection cut
//! at once (as a load balancer or a service restart cuts them) or closed with an AMQP error (as
//! the service closes them), and new connections refused for a while. Faults on one partition
//! (detach, refuse receivers, pause, retention) live with the partition
//! ([`crate::hubs::Partition`]).

use crate::epoch::Kick;
use crate::hubs::lock;
use std::{
    collections::{HashMap, HashSet},
    net::Shutdown,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};
use tokio::sync::oneshot;

/// A live connection: a second handle on its socket (shutting it down ends the connection
/// whichever task owns the socket), and how to tell its task to close it with an error.
struct Live {
    socket: std::net::TcpStream,
    close: oneshot::Sender<Kick>,
    /// The hubs (lower case) the connection has read or received from: what a fault scoped to
    /// one hub reaches.
    hubs: HashSet<String>,
}

#[derive(Default)]
pub struct Faults {
    live: Mutex<HashMap<u64, Live>>,
    next: AtomicU64,
    refuse_until: Mutex<Option<Instant>>,
    /// Connections cut and refused so far.
    cut: AtomicU64,
    refused: AtomicU64,
}

impl Faults {
    /// Whether a connection accepted now is refused (closed at once).
    pub fn refusing(&self) -> bool {
        let refusing = lock(&self.refuse_until).is_some_and(|until| Instant::now() < until);
        if refusing {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        refusing
    }

    /// Registers a live connection's socket (a duplicate handle): its id, for [`Self::ended`],
    /// and what says that it must be closed with an error.
    pub fn track(&self, socket: std::net::TcpStream) -> (u64, oneshot::Receiver<Kick>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (close, closing) = oneshot::channel();
        lock(&self.live).insert(
            id,
            Live {
                socket,
                close,
                hubs: HashSet::new(),
            },
        );
        (id, closing)
    }

    /// Connection `id` used hub `hub`.
    pub fn touch(&self, id: u64, hub: &str) {
        if let Some(live) = lock(&self.live).get_mut(&id) {
            live.hubs.insert(hub.to_ascii_lowercase());
        }
    }

    /// The connection `id` ended by itself.
    pub fn ended(&self, id: u64) {
        lock(&self.live).remove(&id);
    }

    /// Ends every live connection (that used `hub`, if given) and refuses new connections for
    /// `refuse`; how many were ended. Without a `condition` the socket is shut down (no AMQP
    /// close); with one, the connection is closed with that AMQP error.
    pub fn cut_all(&self, refuse: Duration, condition: Option<&str>, hub: Option<&str>) -> usize {
        if !refuse.is_zero() {
            *lock(&self.refuse_until) = Some(Instant::now() + refuse);
        }
        let hub = hub.map(str::to_ascii_lowercase);
        let live: Vec<Live> = {
            let mut all = lock(&self.live);
            let ids: Vec<u64> = all
                .iter()
                .filter(|(_, live)| hub.as_ref().is_none_or(|h| live.hubs.contains(h)))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| all.remove(id)).collect()
        };
        let count = live.len();
        for connection in live {
            match condition {
                None => {
                    let _ = connection.socket.shutdown(Shutdown::Both);
                }
                Some(condition) => {
                    let _ = connection.close.send(Kick {
                        condition: condition.to_owned(),
                        description: "The connection was closed by the service (a fault).".into(),
                    });
                }
            }
        }
        self.cut.fetch_add(count as u64, Ordering::Relaxed);
        count
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "live": lock(&self.live).len(),
            "cut": self.cut.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }
}
