//! The store against a "ceiling": the same Blob requests sent as plain HTTP (reqwest, the HTTP
//! client under `azure_core`), same auth (an account SAS), same concurrency, no store logic. Both
//! run in one process against one Azurite, interleaved, so the report is a ratio: absolute times on
//! a shared 2-core machine are noise.
//!
//! Run with `scripts/bench.sh` (starts Azurite). `BENCH_REPS` sets the repetitions (default 5);
//! each cell is the median.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{account_sas, put_many, Recorder};
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, ConnectionString,
    Ownership, SasToken, DEFAULT_API_VERSION, DEFAULT_CLAIM_CONCURRENCY,
};
use futures::{future::join_all, StreamExt};
use peak_alloc::PeakAlloc;
use std::{
    future::Future,
    num::NonZeroUsize,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const NS: &str = "bench.servicebus.windows.net";
const EH: &str = "hub";

/// What one timed run cost.
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    requests: usize,
    peak_bytes: usize,
}

/// Times `work`, which returns the number of HTTP requests it sent, and its peak heap growth.
async fn measure(work: impl Future<Output = usize>) -> Run {
    ALLOC.reset_peak_usage();
    let base = ALLOC.current_usage();
    let started = Instant::now();
    let requests = work.await;
    Run {
        secs: started.elapsed().as_secs_f64(),
        requests,
        peak_bytes: ALLOC.peak_usage().saturating_sub(base),
    }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    runs[runs.len() / 2]
}

/// The Blob REST calls the store makes, as bare requests.
struct Ceiling {
    http: reqwest::Client,
    container_url: String,
    sas: String,
    requests: AtomicUsize,
}

impl Ceiling {
    fn url(&self, blob: Option<&str>, query: &str) -> String {
        let path = blob.map(|b| format!("/{b}")).unwrap_or_default();
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}{path}?{query}{sep}{}", self.container_url, self.sas)
    }

    async fn send(&self, request: reqwest::RequestBuilder, expect: u16) -> reqwest::Response {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        // The headers the SDK's pipeline adds to every request, with values of the same size, so
        // both sides cost the emulator the same parsing and logging per request.
        let response = request
            .header("x-ms-version", DEFAULT_API_VERSION)
            .header(
                "x-ms-client-request-id",
                format!("{n:08x}-0000-4000-8000-000000000000"),
            )
            .header(
                "user-agent",
                "azsdk-rust-ceiling/1.1.0 (1.95.0; linux; x86_64)",
            )
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), expect, "ceiling request failed");
        response
    }

    async fn put_new(&self, name: &str, owner: &str) {
        let request = self
            .http
            .put(self.url(Some(name), ""))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-type", "application/octet-stream")
            .header("if-none-match", "*")
            .header("x-ms-meta-ownerid", owner)
            .header("content-length", "0");
        self.send(request, 201).await;
    }

    /// Put Blob `If-None-Match: *` for `{prefix}0` … `{prefix}{n - 1}`, `concurrency` in flight.
    async fn put_new_all(&self, prefix: &str, n: usize, concurrency: usize) {
        futures::stream::iter(0..n)
            .map(|p| async move { self.put_new(&format!("{prefix}{p}"), "o").await })
            .buffer_unordered(concurrency)
            .collect::<()>()
            .await;
    }

    async fn set_metadata(&self, name: &str, metadata: &[(&str, &str)], if_match: Option<&str>) {
        let mut request = self.http.put(self.url(Some(name), "comp=metadata"));
        for (k, v) in metadata {
            request = request.header(format!("x-ms-meta-{k}"), *v);
        }
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        self.send(request, 200).await;
    }

    /// Lists the prefix, reading every page in full; returns the number of blobs.
    async fn list(&self, prefix: &str) -> usize {
        let mut marker = String::new();
        let mut blobs = 0;
        loop {
            let mut query = format!(
                "restype=container&comp=list&include=metadata&prefix={}",
                urlencode(prefix)
            );
            if !marker.is_empty() {
                query.push_str(&format!("&marker={}", urlencode(&marker)));
            }
            let body = self
                .send(self.http.get(self.url(None, &query)), 200)
                .await
                .text()
                .await
                .unwrap();
            blobs += body.matches("<Blob>").count();
            marker = between(&body, "<NextMarker>", "</NextMarker>")
                .unwrap_or_default()
                .to_owned();
            if marker.is_empty() {
                return blobs;
            }
        }
    }

    fn take_requests(&self) -> usize {
        self.requests.swap(0, Ordering::Relaxed)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    Some(&text[from..from + text[from..].find(end)?])
}

struct Bench {
    store: BlobCheckpointStore,
    recorder: Recorder,
    ceiling: Ceiling,
    endpoint: String,
    container: String,
    sas: String,
    reps: usize,
}

struct Row {
    workload: String,
    ops: usize,
    store: Run,
    ceiling: Run,
}

/// A store over `container` with the bench's SAS, recording its requests.
fn sas_store(
    endpoint: &str,
    container: &str,
    sas: &str,
    concurrency: NonZeroUsize,
) -> (BlobCheckpointStore, Recorder) {
    let recorder = Recorder::default();
    let options = recorder.install(BlobCheckpointStoreOptions {
        claim_concurrency: concurrency,
        ..Default::default()
    });
    let store = BlobCheckpointStore::new(
        endpoint,
        container,
        SasToken::new(sas).unwrap(),
        Some(options),
    )
    .unwrap();
    (store, recorder)
}

impl Row {
    /// The medians of each side's runs; reports progress on stderr.
    fn from_runs(workload: String, ops: usize, store: Vec<Run>, ceiling: Vec<Run>) -> Self {
        let row = Row {
            workload,
            ops,
            store: median(store),
            ceiling: median(ceiling),
        };
        eprintln!(
            "  {}: store {:.3} s, ceiling {:.3} s",
            row.workload, row.store.secs, row.ceiling.secs
        );
        row
    }
}

impl Bench {
    /// Times store work, counting the requests the store sent for it.
    async fn time_store(&self, work: impl Future<Output = ()>) -> Run {
        self.recorder.take();
        measure(async {
            work.await;
            self.recorder.take().len()
        })
        .await
    }

    /// Times ceiling work, counting the requests the ceiling sent for it.
    async fn time_ceiling(&self, work: impl Future<Output = ()>) -> Run {
        self.ceiling.take_requests();
        measure(async {
            work.await;
            self.ceiling.take_requests()
        })
        .await
    }

    /// Runs the `store` and `ceiling` versions of a workload alternately, `reps` times each (both
    /// get the rep number, to work on fresh names), and keeps the medians. Which side goes first
    /// alternates too, so neither always meets the emulator right after the other's burst.
    async fn compare<S, C, SF, CF>(
        &self,
        workload: &str,
        ops: usize,
        mut store: S,
        mut ceiling: C,
    ) -> Row
    where
        S: FnMut(usize) -> SF,
        SF: Future<Output = ()>,
        C: FnMut(usize) -> CF,
        CF: Future<Output = ()>,
    {
        let (mut store_runs, mut ceiling_runs) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            if rep % 2 == 1 {
                ceiling_runs.push(self.time_ceiling(ceiling(rep)).await);
            }
            store_runs.push(self.time_store(store(rep)).await);
            if rep % 2 == 0 {
                ceiling_runs.push(self.time_ceiling(ceiling(rep)).await);
            }
        }
        Row::from_runs(workload.to_owned(), ops, store_runs, ceiling_runs)
    }
}

fn claims(group: &str, n: usize, owner: &str) -> Vec<Ownership> {
    (0..n)
        .map(|p| Ownership::new(NS, EH, group, p.to_string(), owner))
        .collect()
}

async fn claim_new(bench: &Bench, n: usize) -> Row {
    let concurrency = DEFAULT_CLAIM_CONCURRENCY.get();
    bench
        .compare(
            &format!("claim {n} new partitions"),
            n,
            |rep| async move {
                let won = bench
                    .store
                    .claim_ownership(&claims(&format!("new{n}-s{rep}"), n, "o"))
                    .await
                    .unwrap();
                assert_eq!(won.len(), n);
            },
            |rep| async move {
                let prefix = format!("{NS}/{EH}/new{n}-c{rep}/ownership/");
                bench.ceiling.put_new_all(&prefix, n, concurrency).await;
            },
        )
        .await
}

async fn main_async() {
    let connection = std::env::var("AZURITE_CONNECTION_STRING")
        .expect("AZURITE_CONNECTION_STRING is not set: run the benchmarks with scripts/bench.sh, which starts Azurite");
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let parsed = ConnectionString::parse(&connection).unwrap();
    let endpoint = parsed
        .blob_endpoint()
        .unwrap()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let sas = account_sas(&parsed);
    let container = common::unique_container();
    let (store, recorder) = sas_store(&endpoint, &container, &sas, DEFAULT_CLAIM_CONCURRENCY);
    store.create_container_if_missing().await.unwrap();
    let ceiling = Ceiling {
        http: reqwest::Client::new(),
        container_url: format!("{endpoint}/{container}"),
        sas: sas.clone(),
        requests: AtomicUsize::new(0),
    };
    let bench = Bench {
        store,
        recorder,
        ceiling,
        endpoint,
        container,
        sas,
        reps,
    };
    eprintln!(
        "benchmarking against {} ({reps} reps, median)",
        bench.endpoint
    );

    warm_up(&bench).await;
    let mut rows = vec![claim_new(&bench, 32).await, claim_new(&bench, 1024).await];
    rows.push(reclaim(&bench, 1024).await);
    rows.push(list_ownership(&bench, 1024, 20).await);
    rows.push(list_checkpoints(&bench, 6000).await);
    rows.push(checkpoint_updates(&bench, 32, 50).await);
    print_table(&rows);
    concurrency_sweep(&bench, 1024).await;
}

/// Untimed: both sides open their pools of connections before anything is measured.
async fn warm_up(bench: &Bench) {
    let n = 4 * DEFAULT_CLAIM_CONCURRENCY.get();
    bench
        .store
        .claim_ownership(&claims("warm-up-s", n, "o"))
        .await
        .unwrap();
    let prefix = format!("{NS}/{EH}/warm-up-c/ownership/");
    bench
        .ceiling
        .put_new_all(&prefix, n, DEFAULT_CLAIM_CONCURRENCY.get())
        .await;
}

/// Re-claims with current etags. Each side re-lists between reps (untimed) to get fresh etags.
async fn reclaim(bench: &Bench, n: usize) -> Row {
    let concurrency = DEFAULT_CLAIM_CONCURRENCY.get();
    for side in ["s", "c"] {
        bench
            .store
            .claim_ownership(&claims(&format!("re{n}-{side}"), n, "o"))
            .await
            .unwrap();
    }
    let (mut store_runs, mut ceiling_runs) = (Vec::new(), Vec::new());
    for _ in 0..bench.reps {
        let current = bench
            .store
            .list_ownership(NS, EH, &format!("re{n}-s"))
            .await
            .unwrap();
        store_runs.push(
            bench
                .time_store(async {
                    assert_eq!(
                        bench.store.claim_ownership(&current).await.unwrap().len(),
                        n
                    );
                })
                .await,
        );
        let current = bench
            .store
            .list_ownership(NS, EH, &format!("re{n}-c"))
            .await
            .unwrap();
        ceiling_runs.push(
            bench
                .time_ceiling(async {
                    futures::stream::iter(&current)
                        .map(|o| async move {
                            let name = format!("{NS}/{EH}/re{n}-c/ownership/{}", o.partition_id);
                            let etag = o.etag.as_ref().map(|e| e.as_ref());
                            bench
                                .ceiling
                                .set_metadata(&name, &[("ownerid", "o")], etag)
                                .await
                        })
                        .buffer_unordered(concurrency)
                        .collect::<()>()
                        .await;
                })
                .await,
        );
    }
    Row::from_runs(
        format!("re-claim {n} with current etags"),
        n,
        store_runs,
        ceiling_runs,
    )
}

async fn list_ownership(bench: &Bench, n: usize, times: usize) -> Row {
    let prefix = format!("{NS}/{EH}/list{n}/ownership/");
    put_many(&bench.store, &prefix, n).await;
    bench
        .compare(
            &format!("list {n} ownerships x{times}"),
            times,
            |_| async move {
                for _ in 0..times {
                    assert_eq!(
                        bench
                            .store
                            .list_ownership(NS, EH, &format!("list{n}"))
                            .await
                            .unwrap()
                            .len(),
                        n
                    );
                }
            },
            |_| {
                let prefix = prefix.clone();
                async move {
                    for _ in 0..times {
                        assert_eq!(bench.ceiling.list(&prefix).await, n);
                    }
                }
            },
        )
        .await
}

async fn list_checkpoints(bench: &Bench, n: usize) -> Row {
    let prefix = format!("{NS}/{EH}/cp{n}/checkpoint/");
    put_many(&bench.store, &prefix, n).await;
    bench
        .compare(
            &format!("list {n} checkpoints"),
            1,
            |_| async move {
                assert_eq!(
                    bench
                        .store
                        .list_checkpoints(NS, EH, &format!("cp{n}"))
                        .await
                        .unwrap()
                        .len(),
                    n
                );
            },
            |_| {
                let prefix = prefix.clone();
                async move { assert_eq!(bench.ceiling.list(&prefix).await, n) }
            },
        )
        .await
}

async fn checkpoint_updates(bench: &Bench, partitions: usize, updates: usize) -> Row {
    // Create the blobs first: every timed update is then the common one-request case.
    for side in ["s", "c"] {
        for p in 0..partitions {
            let checkpoint = Checkpoint::new(
                NS,
                EH,
                format!("upd-{side}"),
                p.to_string(),
                Some("0".into()),
                Some(0),
            );
            bench.store.update_checkpoint(&checkpoint).await.unwrap();
        }
    }
    bench
        .compare(
            &format!("{partitions} partitions x {updates} checkpoint updates"),
            partitions * updates,
            |_| async move {
                join_all((0..partitions).map(|p| async move {
                    for seq in 0..updates {
                        let checkpoint = Checkpoint::new(
                            NS,
                            EH,
                            "upd-s",
                            p.to_string(),
                            Some(seq.to_string()),
                            Some(seq as i64),
                        );
                        bench.store.update_checkpoint(&checkpoint).await.unwrap();
                    }
                }))
                .await;
            },
            |_| async move {
                join_all((0..partitions).map(|p| async move {
                    let name = format!("{NS}/{EH}/upd-c/checkpoint/{p}");
                    for seq in 0..updates {
                        let seq = seq.to_string();
                        bench
                            .ceiling
                            .set_metadata(
                                &name,
                                &[("offset", &seq), ("sequencenumber", &seq)],
                                None,
                            )
                            .await;
                    }
                }))
                .await;
            },
        )
        .await
}

/// Claim throughput by `claim_concurrency`, to choose its default.
async fn concurrency_sweep(bench: &Bench, n: usize) {
    println!(
        "\nclaim {n} new partitions by claim_concurrency (store only, median of {} reps):\n",
        bench.reps
    );
    println!("| claim_concurrency | claims/s |");
    println!("|---:|---:|");
    for concurrency in [4usize, 8, 16, 32, 64, 128] {
        let (store, _) = sas_store(
            &bench.endpoint,
            &bench.container,
            &bench.sas,
            NonZeroUsize::new(concurrency).unwrap(),
        );
        let mut runs = Vec::new();
        for rep in 0..bench.reps {
            let input = claims(&format!("sweep{concurrency}-{rep}"), n, "o");
            runs.push(measure(async { store.claim_ownership(&input).await.unwrap().len() }).await);
        }
        println!("| {concurrency} | {:.0} |", n as f64 / median(runs).secs);
    }
}

fn print_table(rows: &[Row]) {
    println!("\n| workload | store ops/s | ceiling ops/s | store/ceiling | store req/op | ceiling req/op | store peak heap | ceiling peak heap |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let ops = row.ops as f64;
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {} | {} |",
            row.workload,
            ops / row.store.secs,
            ops / row.ceiling.secs,
            row.ceiling.secs / row.store.secs,
            row.store.requests as f64 / ops,
            row.ceiling.requests as f64 / ops,
            kib(row.store.peak_bytes),
            kib(row.ceiling.peak_bytes),
        );
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(main_async());
}
