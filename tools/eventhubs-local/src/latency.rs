//! A network's latency on what the endpoint sends: each chunk its AMQP stack writes reaches the
//! client a fixed delay later, in order and without limiting throughput (a delay line, not a
//! throttle).
//!
//! Why: the real service is never microseconds away, and the official Rust client 0.15 (with
//! fe2o3-amqp 0.14) has races that only a peer that fast loses often. When it drops a session
//! whose links it dropped, it sends their detaches and the session's end, and a reply that
//! arrives before it has processed its own end can stop the session early; the reply to the end
//! then finds no session, and the client closes its whole connection ("Session is not found")
//! and never reconnects. At a realistic latency the client has finished first. `--latency-ms 0`
//! reproduces the race.

use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    net::TcpStream,
    sync::mpsc,
    time::Instant,
};

/// The stream to hand the AMQP stack in place of `stream`: what it writes reaches the client
/// `latency` later; what the client sends arrives at once.
pub fn delayed(stream: TcpStream, latency: Duration) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_client, mut to_client) = stream.into_split();
    let (mut from_stack, mut to_stack) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_stack).await;
        let _ = to_stack.shutdown().await;
    });
    let (line, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_stack.read(&mut buf).await {
            if n == 0
                || line
                    .send((Instant::now() + latency, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to_client.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to_client.shutdown().await;
    });
    ours
}
