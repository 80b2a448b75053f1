//! `eventhubs-local`: a local Event Hubs endpoint for tests, demos and examples. It serves the
//! consumer side of Event Hubs over plain AMQP 1.0 on loopback (SASL ANONYMOUS, `$cbs`
//! put-token, `$management` reads of hubs and partitions, partition receivers with start filters
//! and epochs), and an HTTP control plane to create hubs and append events.
//!
//! ```text
//! eventhubs-local [--port N] [--control-port N] [--latency-ms N] [--hub NAME=PARTITIONS[:PRELOAD[:RATE[:TOTAL]]]]...
//! ```
//!
//! `--latency-ms` (default 2): how much later what the endpoint sends reaches a client, as over
//! a network (see `latency.rs` for why it is not 0).
//!
//! When both listen, it prints one line, `eventhubs-local amqp://127.0.0.1:N http://127.0.0.1:N`,
//! and serves until interrupted. Control plane (`Connection: close`, JSON):
//!
//! - `PUT /hubs/{name}` `{"partitions": 8, "preload": 100, "rate": 25.0, "total": 500}`: creates a
//!   hub (201; 409 if it exists), preloaded, and produces `rate` events per second per partition
//!   until `total` (`rate` 0 or absent: none).
//! - `GET /hubs/{name}`: its partitions: event counts, last sequence numbers, offsets, times.
//! - `POST /hubs/{name}/partitions/{id}/events?count=N`: appends N events now.
//! - `POST /faults/cut?refuse_ms=N[&condition=C][&hub=H]`: ends every client connection now
//!   and refuses new ones for N ms (default 0): without `condition` the socket is shut down (no
//!   AMQP close), with one (e.g. `amqp:internal-error`) the connection is closed with that AMQP
//!   error. With `hub`, only the connections that used hub H (read it or received from it), and
//!   instead of refusing connections its receivers are refused (`com.microsoft:server-busy`)
//!   for N ms: tests of other hubs run on undisturbed.
//!   `GET /faults`: connections live, cut and refused so far.
//!
//! Faults on one partition, `POST /hubs/{name}/partitions/{id}/...`:
//! - `detach?condition=C[&group=G]`: detaches every receiver (of consumer group G) with error C
//!   (default `amqp:link:detach-forced`; also `com.microsoft:server-busy`,
//!   `amqp:internal-error`, ...); `{"detached": n}`.
//! - `refuse?ms=N[&condition=C]`: refuses new receivers for N ms with C (default
//!   `com.microsoft:server-busy`).
//! - `pause`, `resume`: stops and restarts delivery to its receivers (they stay attached).
//! - `expire?before=N`: retention: events before sequence number N expire; the begin sequence
//!   number and `$management` reads follow, and a start before it starts at the first retained
//!   event.
//!
//! As Event Hubs does, a receiver whose start (sequence number or offset) lies past the end of
//! the partition, skipping events not enqueued yet, is refused with
//! `com.microsoft:argument-out-of-range`; the next event's own position is accepted.

mod amqp;
mod control;
mod epoch;
mod faults;
mod filter;
mod hubs;
mod latency;

use std::sync::Arc;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("eventhubs-local: {err}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let mut port = 0u16;
    let mut control_port = 0u16;
    let hubs = Arc::new(hubs::Hubs::default());
    let mut args = std::env::args().skip(1);
    let mut verbose = false;
    let mut latency_ms = 2u64;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => port = value("--port")?.parse().map_err(|_| "--port: not a port")?,
            "--control-port" => {
                control_port = value("--control-port")?
                    .parse()
                    .map_err(|_| "--control-port: not a port")?
            }
            "--hub" => {
                let spec = value("--hub")?;
                let (name, spec) = spec
                    .split_once('=')
                    .ok_or("--hub takes NAME=PARTITIONS[:PRELOAD[:RATE[:TOTAL]]]")?;
                hubs.create(name, &hubs::Spec::parse(spec)?)?;
            }
            "--latency-ms" => {
                latency_ms = value("--latency-ms")?
                    .parse()
                    .map_err(|_| "--latency-ms: not a number of milliseconds")?
            }
            "--verbose" | "-v" => verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    tracing_subscriber::fmt()
        .with_max_level(if verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        })
        .with_writer(std::io::stderr)
        .init();
    let amqp = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let http = TcpListener::bind(("127.0.0.1", control_port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{control_port}: {e}"))?;
    let amqp_addr = amqp.local_addr().map_err(|e| e.to_string())?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    println!("eventhubs-local amqp://{amqp_addr} http://{http_addr}");
    let faults = Arc::new(faults::Faults::default());
    tokio::spawn(control::serve(http, hubs.clone(), faults.clone()));
    tokio::select! {
        () = amqp::serve(amqp, hubs, std::time::Duration::from_millis(latency_ms), faults) => Err("the AMQP listener failed".into()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
