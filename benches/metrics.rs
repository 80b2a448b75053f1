//! What the metrics cost (feature `metrics`): each workload through one `BlobCheckpointStore`
//! against Azurite, with no recorder installed and with a Prometheus recorder installed, the two
//! alternating rep by rep (and which goes first) in one run; each cell is the median. The ratio (ops/s with a recorder
//! over ops/s without) is the number to read.
//!
//! ```sh
//! scripts/bench.sh metrics
//! ```
//!
//! The recorder is the thread's default for the reps that have one, on a single-threaded runtime,
//! so everything the store records in those reps reaches it and nothing else does.

use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
use eventhub_checkpointstore_testkit as common;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::time::{Duration, Instant};

/// One rep of one workload: operations, wall time, and this process's CPU time.
struct Run {
    ops: u64,
    wall: Duration,
    cpu: Duration,
}

async fn timed<F: std::future::Future<Output = u64>>(work: F) -> Run {
    let cpu = cpu_time::ProcessTime::now();
    let started = Instant::now();
    let ops = work.await;
    Run {
        ops,
        wall: started.elapsed(),
        cpu: cpu.elapsed(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Claims `n` new partitions in one call.
async fn claim_new(store: &BlobCheckpointStore, n: usize) -> u64 {
    let scope = Scope::new("bench", common::unique_container(), "$Default");
    let claims: Vec<_> = (0..n)
        .map(|p| scope.ownership(p.to_string(), "bench"))
        .collect();
    let won = store.claim_ownership(&claims).await.expect("claims");
    assert_eq!(won.len(), n);
    n as u64
}

/// 32 partitions, each advanced 50 times, the partitions concurrently.
async fn checkpoints(store: &BlobCheckpointStore) -> u64 {
    let scope = Scope::new("bench", common::unique_container(), "$Default");
    let writers = (0..32).map(|p| {
        let scope = scope.clone();
        async move {
            for seq in 0..50i64 {
                store
                    .advance_checkpoint(&scope.checkpoint(
                        p.to_string(),
                        Some((seq * 1024).to_string()),
                        Some(seq),
                    ))
                    .await
                    .expect("checkpoint");
            }
        }
    });
    futures::future::join_all(writers).await;
    32 * 50
}

/// Lists `scope`'s ownership 20 times.
async fn listings(store: &BlobCheckpointStore, scope: &Scope) -> u64 {
    for _ in 0..20 {
        store.list_ownership(scope).await.expect("listing");
    }
    20
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    runtime.block_on(async {
        let store = common::fresh_store(None).await;
        let listed = Scope::new("bench", "listed", "$Default");
        let seed: Vec<_> = (0..1024)
            .map(|p| listed.ownership(p.to_string(), "bench"))
            .collect();
        store.claim_ownership(&seed).await.expect("seed");

        let workloads = [
            "claim 1024 new partitions",
            "32 partitions x 50 checkpoint advances",
            "list 1024 ownerships x20",
        ];
        println!(
            "metrics cost: {reps} reps, median; ops/s without a recorder, with a Prometheus recorder\n"
        );
        println!("| workload | ops/s without | ops/s with | with/without | CPU µs/op without | CPU µs/op with |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (i, name) in workloads.iter().enumerate() {
            let (mut off, mut on) = (Vec::new(), Vec::new());
            for rep in 0..reps {
                // Which goes first alternates too: Azurite grows as the claims create blobs.
                let order = if rep % 2 == 0 { [false, true] } else { [true, false] };
                for with in order {
                    let guard = with.then(|| metrics::set_default_local_recorder(&recorder));
                    let run = match i {
                        0 => timed(claim_new(&store, 1024)).await,
                        1 => timed(checkpoints(&store)).await,
                        _ => timed(listings(&store, &listed)).await,
                    };
                    drop(guard);
                    let rate = run.ops as f64 / run.wall.as_secs_f64();
                    let cpu = run.cpu.as_secs_f64() * 1e6 / run.ops as f64;
                    if with { &mut on } else { &mut off }.push((rate, cpu));
                }
            }
            let rate = |v: &[(f64, f64)]| median(v.iter().map(|r| r.0).collect());
            let cpu = |v: &[(f64, f64)]| median(v.iter().map(|r| r.1).collect());
            println!(
                "| {name} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
                rate(&off),
                rate(&on),
                rate(&on) / rate(&off),
                cpu(&off),
                cpu(&on)
            );
        }
    });
    // The recorder saw the reps that had it: a check that the "with" column measured something.
    let rendered = handle.render();
    assert!(
        rendered.contains("messaging_eventhubs_checkpoint_store_claims"),
        "the recorder saw nothing"
    );
}
