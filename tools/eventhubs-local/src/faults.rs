//! Faults a test injects through the control plane: every client connection cut at once (as a
//! load balancer or a service restart cuts them), and new connections refused for a while.

use crate::hubs::lock;
use std::{
    collections::HashMap,
    net::Shutdown,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

#[derive(Default)]
pub struct Faults {
    /// A second handle on each live connection's socket, by id: shutting it down ends the
    /// connection whichever task owns the socket.
    live: Mutex<HashMap<u64, std::net::TcpStream>>,
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

    /// Registers a live connection's socket (a duplicate handle); its id, for [`Self::ended`].
    pub fn track(&self, socket: std::net::TcpStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.live).insert(id, socket);
        id
    }

    /// The connection `id` ended by itself.
    pub fn ended(&self, id: u64) {
        lock(&self.live).remove(&id);
    }

    /// Cuts every live connection (no AMQP close: the socket is shut down) and refuses new ones
    /// for `refuse`; how many were cut.
    pub fn cut_all(&self, refuse: Duration) -> usize {
        *lock(&self.refuse_until) = Some(Instant::now() + refuse);
        let live: Vec<_> = lock(&self.live).drain().map(|(_, s)| s).collect();
        for socket in &live {
            let _ = socket.shutdown(Shutdown::Both);
        }
        self.cut.fetch_add(live.len() as u64, Ordering::Relaxed);
        live.len()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "live": lock(&self.live).len(),
            "cut": self.cut.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }
}
