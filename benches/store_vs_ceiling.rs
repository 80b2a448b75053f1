//! The store against a "ceiling": the same Blob requests sent as plain HTTP (reqwest, the HTTP
//! client under `azure_core`), same auth (an account SAS), same concurrency, no store logic, and
//! only the headers a request needs (no client request id, no SDK user agent). Both run in one
//! process against one Azurite, interleaved, so the report is a ratio: absolute times on a shared
//! 2-core machine are noise. Each side's client CPU (the process's user + system time over its
//! timed section; Azurite is another process) is reported per operation.
//!
//! Latency rows run both sides through a TCP proxy that holds every client-to-server write for
//! 10 ms, as a network round trip to Azure would, and keeps connections alive as Azure does (the
//! reliability suite's HTTP proxy closes each connection, which measures connection setup too).
//!
//! Run with `scripts/bench.sh` (starts Azurite). `BENCH_REPS` sets the repetitions (default 5);
//! each cell is the median.

use eventhub_checkpointstore_testkit as common;

use common::{account_sas, put_many};
use eventhub_checkpointstore::azure_core::http::{
    policies::{Policy, PolicyResult},
    Context, Request,
};
use eventhub_checkpointstore::blob::DEFAULT_API_VERSION;
use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, ConnectionString,
    Ownership, SasToken, DEFAULT_CLAIM_CONCURRENCY,
};
use futures::{future::join_all, StreamExt};
use peak_alloc::PeakAlloc;
use std::{
    future::Future,
    num::{NonZeroU64, NonZeroUsize},
    sync::atomic::{AtomicUsize, Ordering},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const NS: &str = "bench.servicebus.windows.net";
const EH: &str = "hub";

/// What one timed run cost.
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    /// The process's CPU time (user + system) over the run.
    cpu_secs: f64,
    requests: usize,
    peak_bytes: usize,
}

/// Times `work`, which returns the number of HTTP requests it sent, and its peak heap growth.
async fn measure(work: impl Future<Output = usize>) -> Run {
    ALLOC.reset_peak_usage();
    let base = ALLOC.current_usage();
    let cpu = cpu_time::ProcessTime::now();
    let started = Instant::now();
    let requests = work.await;
    Run {
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: cpu.elapsed().as_secs_f64(),
        requests,
        peak_bytes: ALLOC.peak_usage().saturating_sub(base),
    }
}

/// The median run by time; its CPU is the median CPU of the runs (the two need not be the same
/// run's: CPU varies less than time on a busy machine).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.cpu_secs.total_cmp(&b.cpu_secs));
    let cpu_secs = runs[runs.len() / 2].cpu_secs;
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    Run {
        cpu_secs,
        ..runs[runs.len() / 2]
    }
}

/// The Blob REST calls the store makes, as bare requests.
struct Ceiling {
    http: reqwest::Client,
    container_url: String,
    sas: String,
    requests: AtomicUsize,
    /// Also send the two headers `azure_core`'s pipeline adds to every request (a client request
    /// id and the SDK's user agent), to measure what they cost the service.
    sdk_headers: bool,
}

impl Ceiling {
    fn new(endpoint: &str, container: &str, sas: &str, sdk_headers: bool) -> Self {
        Ceiling {
            http: reqwest::Client::new(),
            container_url: format!("{endpoint}/{container}"),
            sas: sas.to_owned(),
            requests: AtomicUsize::new(0),
            sdk_headers,
        }
    }

    fn url(&self, blob: Option<&str>, query: &str) -> String {
        let path = blob.map(|b| format!("/{b}")).unwrap_or_default();
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}{path}?{query}{sep}{}", self.container_url, self.sas)
    }

    async fn send(&self, request: reqwest::RequestBuilder, expect: u16) -> reqwest::Response {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        // The minimal request: no client request id, no SDK user agent, unless asked.
        let mut request = request.header("x-ms-version", DEFAULT_API_VERSION);
        if self.sdk_headers {
            request = request
                .header(
                    "x-ms-client-request-id",
                    format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id()),
                )
                .header(
                    "user-agent",
                    format!(
                        "azsdk-rust-eventhub_checkpointstore/0.1.0 (1.91.0; {}; {})",
                        std::env::consts::OS,
                        std::env::consts::ARCH
                    ),
                );
        }
        // A pooled connection that the emulator closes as a request goes out fails the request
        // (hyper's IncompleteMessage); it is sent again, as any client with retries would (the
        // store's pipeline included), and counted. If the first try had landed, the retry of a
        // conditional write finds its own write: 409 or 412 then count as done.
        let mut retried = false;
        let response = loop {
            let attempt = request.try_clone().expect("no streamed bodies here");
            match attempt.send().await {
                Ok(response) => break response,
                Err(err) if err.is_request() && !retried => {
                    retried = true;
                    self.requests.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => panic!("request sent: {err:?}"),
            }
        };
        let status = response.status().as_u16();
        assert!(
            status == expect || (retried && matches!(status, 409 | 412)),
            "ceiling request failed: {status}, expected {expect}"
        );
        response
    }

    async fn put_new(&self, name: &str, owner: &str) {
        let request = self
            .http
            .put(self.url(Some(name), ""))
            .header("x-ms-blob-type", "BlockBlob")
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
        // Azure Storage refuses a PUT without a length (411 `MissingContentLengthHeader`), so
        // every client sends it (the emulator does not insist).
        request = request.header("content-length", "0");
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
    recorder: Counter,
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

/// Counts the requests a store sends (every try), as cheaply as the ceiling counts its own: the
/// tests' `Recorder` keeps each request's URL and headers, which the store would be charged for.
#[derive(Clone, Debug, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Policy for Counter {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// A store over `container` with the bench's SAS, counting its requests.
fn sas_store(
    endpoint: &str,
    container: &str,
    sas: &str,
    concurrency: NonZeroUsize,
) -> (BlobCheckpointStore, Counter) {
    let recorder = Counter::default();
    let mut options = BlobCheckpointStoreOptions {
        service: ServiceOptions {
            claim_concurrency: concurrency,
            ..Default::default()
        },
        ..Default::default()
    };
    options
        .service
        .client_options
        .per_try_policies
        .push(Arc::new(recorder.clone()));
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
    /// Azurite's address, for a proxy in front of it.
    fn upstream(&self) -> std::net::SocketAddr {
        self.endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Times store work, counting the requests the store sent for it.
    async fn time_store(&self, work: impl Future<Output = ()>) -> Run {
        self.recorder.take();
        measure(async {
            work.await;
            self.recorder.take()
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
        .map(|p| Ownership::new((NS, EH, group), p.to_string(), owner))
        .collect()
}

async fn claim_new(bench: &Bench, n: usize, tag: &str) -> Row {
    let concurrency = DEFAULT_CLAIM_CONCURRENCY.get();
    bench
        .compare(
            &format!("claim {n} new partitions"),
            n,
            |rep| async move {
                let won = bench
                    .store
                    .claim_ownership(&claims(&format!("new{n}{tag}-s{rep}"), n, "o"))
                    .await
                    .unwrap();
                assert_eq!(won.len(), n);
            },
            |rep| async move {
                let prefix = format!("{NS}/{EH}/new{n}{tag}-c{rep}/ownership/");
                bench.ceiling.put_new_all(&prefix, n, concurrency).await;
            },
        )
        .await
}

/// A count the environment variable `name` sets, `default` when it is unset or not a number.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

async fn main_async() {
    let connection = std::env::var("AZURITE_CONNECTION_STRING")
        .expect("AZURITE_CONNECTION_STRING is not set: run the benchmarks with scripts/bench.sh, which starts Azurite");
    let reps = env_count("BENCH_REPS", 5);
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
    let ceiling = Ceiling::new(&endpoint, &container, &sas, false);
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

    if let Ok(side) = std::env::var("BENCH_PROFILE") {
        return profile_listing(&bench, &side).await;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("network") {
        return behind_a_slow_network(&bench).await;
    }
    warm_up(&bench).await;
    let mut rows = vec![
        claim_new(&bench, 32, "").await,
        claim_new(&bench, 1024, "").await,
    ];
    rows.push(reclaim(&bench, 1024).await);
    rows.push(list_ownership(&bench, 1024, 20).await);
    rows.push(list_checkpoints(&bench, 6000).await);
    rows.push(checkpoint_updates(&bench, 32, 50).await);
    print_table(&rows);

    // The same two workloads against a ceiling that also sends the SDK's client request id and
    // user agent: what remains of the gap above is the service's work on those two headers.
    let with_sdk_headers = Bench {
        store: bench.store.clone(),
        recorder: bench.recorder.clone(),
        ceiling: Ceiling::new(&bench.endpoint, &bench.container, &bench.sas, true),
        endpoint: bench.endpoint.clone(),
        container: bench.container.clone(),
        sas: bench.sas.clone(),
        reps: bench.reps,
    };
    println!("\nthe same against a ceiling that also sends the SDK's `x-ms-client-request-id` and `user-agent`:");
    print_table(&[
        claim_new(&with_sdk_headers, 1024, "h").await,
        checkpoint_updates(&with_sdk_headers, 32, 50).await,
    ]);

    small_listing_latency(&bench, 200).await;
    listings(&bench).await;
    concurrency_sweep(&bench, 1024).await;
    through_latency(&bench, Duration::from_millis(10), Duration::from_millis(50)).await;
    behind_a_slow_network(&bench).await;
}

/// `BENCH_PROFILE=SIDE-RECORD BENCH_ITERS=N` (SIDE `store`, `table` or `ceiling`, RECORD
/// `checkpoint` or `ownership`; or SIDE `store`, `advance`, `checkpointer` or `ceiling` with
/// RECORD `updates`: 32 partitions x N checkpoint updates): only `N` listings of 1,000 such
/// records by one side, for
/// `valgrind --tool=callgrind`; two runs with different `N` give the instructions per listed
/// record, the set-up cancelling out (`scripts/profile.sh`).
async fn profile_listing(bench: &Bench, profile: &str) {
    const RECORDS: usize = 1000;
    let iterations = env_count("BENCH_ITERS", 10);
    let (side, record) = profile.split_once('-').expect("BENCH_PROFILE=SIDE-RECORD");
    if record == "updates" {
        // 32 partitions x `iterations` checkpoint updates: through the store's plain
        // `update_checkpoint`, its `advance_checkpoint` (what the checkpointer sends), a
        // checkpointer writing every position, or the ceiling.
        profile_updates(bench, side, iterations).await;
        return;
    }
    if side == "table" {
        // The table store, listing 1,000 `record`s (`checkpoint` or `ownership`).
        return profile_table_listing(record, iterations).await;
    }
    let scope = Scope::new(NS, EH, "profile");
    let prefix = format!("{NS}/{EH}/profile/{record}/");
    bench.ceiling.put_new_all(&prefix, RECORDS, 32).await;
    if record == "checkpoint" {
        for p in 0..RECORDS {
            bench
                .ceiling
                .set_metadata(
                    &format!("{prefix}{p}"),
                    &[("offset", "1024"), ("sequencenumber", "1")],
                    None,
                )
                .await;
        }
    }
    for _ in 0..iterations {
        let listed = match (side, record) {
            ("store", "checkpoint") => bench.store.list_checkpoints(&scope).await.unwrap().len(),
            ("store", _) => bench.store.list_ownership(&scope).await.unwrap().len(),
            _ => bench.ceiling.list(&prefix).await,
        };
        assert_eq!(listed, RECORDS);
    }
}

/// Listings of 4 checkpoints, 1,024 ownerships and 6,000 checkpoints against the header-matched
/// ceiling (it sends the SDK's client request id and user agent too), one call at a time, the
/// two sides alternating call by call: throughput, p50 and p99, and client CPU per listed record.
/// Uses the records `small_listing_latency`, `list_ownership` and `list_checkpoints` wrote.
async fn listings(bench: &Bench) {
    let (small, _) = sas_store(
        &bench.endpoint,
        SMALL_CONTAINER,
        &bench.sas,
        DEFAULT_CLAIM_CONCURRENCY,
    );
    let small_ceiling = Ceiling::new(&bench.endpoint, SMALL_CONTAINER, &bench.sas, true);
    let main_ceiling = Ceiling::new(&bench.endpoint, &bench.container, &bench.sas, true);
    println!(
        "
listings against the header-matched ceiling, one call at a time, alternating:
"
    );
    println!("| listing | calls | store/s | ceiling/s | store/ceiling | p50 ms store | p50 ms ceiling | p99 ms store | p99 ms ceiling | CPU µs/record store | CPU µs/record ceiling |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, store, ceiling, scope, prefix, n, calls) in [
        (
            "4 checkpoints",
            &small,
            &small_ceiling,
            "small4",
            "checkpoint",
            4,
            400,
        ),
        (
            "1,024 ownerships",
            &bench.store,
            &main_ceiling,
            "list1024",
            "ownership",
            1024,
            60,
        ),
        (
            "6,000 checkpoints",
            &bench.store,
            &main_ceiling,
            "cp6000",
            "checkpoint",
            6000,
            20,
        ),
    ] {
        let scope = Scope::new(NS, EH, scope);
        let prefix = format!("{NS}/{EH}/{}/{prefix}/", scope.consumer_group);
        let (mut store_ms, mut ceiling_ms) = (Vec::new(), Vec::new());
        let (mut store_cpu, mut ceiling_cpu) = (0.0, 0.0);
        for call in 0..calls {
            let store_call = || async {
                let listed = if prefix.contains("/ownership/") {
                    store.list_ownership(&scope).await.unwrap().len()
                } else {
                    store.list_checkpoints(&scope).await.unwrap().len()
                };
                assert_eq!(listed, n);
                1
            };
            let ceiling_call = || async {
                assert_eq!(ceiling.list(&prefix).await, n);
                1
            };
            // Which side goes first alternates too.
            let (first, second) = if call % 2 == 0 {
                (measure(store_call()).await, measure(ceiling_call()).await)
            } else {
                let c = measure(ceiling_call()).await;
                (measure(store_call()).await, c)
            };
            store_ms.push(first.secs * 1e3);
            store_cpu += first.cpu_secs;
            ceiling_ms.push(second.secs * 1e3);
            ceiling_cpu += second.cpu_secs;
        }
        let total = |v: &[f64]| v.iter().sum::<f64>() / 1e3;
        let (store_rate, ceiling_rate) = (
            calls as f64 / total(&store_ms),
            calls as f64 / total(&ceiling_ms),
        );
        store_ms.sort_by(f64::total_cmp);
        ceiling_ms.sort_by(f64::total_cmp);
        let per_record = |cpu: f64| cpu * 1e6 / (calls * n) as f64;
        println!(
            "| {label} | {calls} | {store_rate:.1} | {ceiling_rate:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            store_rate / ceiling_rate,
            percentile(&store_ms, 0.5),
            percentile(&ceiling_ms, 0.5),
            percentile(&store_ms, 0.99),
            percentile(&ceiling_ms, 0.99),
            per_record(store_cpu),
            per_record(ceiling_cpu),
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Listing 4 checkpoints, one call at a time, `calls` times each side (alternating): the latency a
/// balancer's cycle pays, p50 and p99, and the client CPU per call.
async fn small_listing_latency(bench: &Bench, calls: usize) {
    // A container of its own: Azurite scans a container's blobs to list a prefix, so the
    // bench's main container, which grows to tens of thousands of blobs, would be measured.
    let (store, _) = sas_store(
        &bench.endpoint,
        SMALL_CONTAINER,
        &bench.sas,
        DEFAULT_CLAIM_CONCURRENCY,
    );
    store.create_container_if_missing().await.unwrap();
    put_many(&store, &format!("{NS}/{EH}/small4/checkpoint/"), 4).await;
    let ceiling = Ceiling::new(&bench.endpoint, SMALL_CONTAINER, &bench.sas, false);
    list_small(&store, &ceiling, calls, "").await;
}

/// The container of the small listing's 4 checkpoints.
const SMALL_CONTAINER: &str = "bench-small-listing";

/// Lists the 4 checkpoints `small_listing_latency` wrote, through `store` and `ceiling`.
async fn list_small(
    bench_store: &BlobCheckpointStore,
    bench_ceiling: &Ceiling,
    calls: usize,
    how: &str,
) {
    let prefix = format!("{NS}/{EH}/small4/checkpoint/");
    let (mut store, mut ceiling) = (Vec::new(), Vec::new());
    let (mut store_cpu, mut ceiling_cpu) = (0.0, 0.0);
    for _ in 0..calls {
        let run = measure(async {
            let listed = bench_store
                .list_checkpoints(&Scope::new(NS, EH, "small4"))
                .await
                .unwrap();
            assert_eq!(listed.len(), 4);
            1
        })
        .await;
        store.push(run.secs * 1e3);
        store_cpu += run.cpu_secs;
        let run = measure(async {
            assert_eq!(bench_ceiling.list(&prefix).await, 4);
            1
        })
        .await;
        ceiling.push(run.secs * 1e3);
        ceiling_cpu += run.cpu_secs;
    }
    store.sort_by(f64::total_cmp);
    ceiling.sort_by(f64::total_cmp);
    println!("\nlist 4 checkpoints{how}, {calls} calls each, one at a time:\n");
    println!("| side | p50 ms | p99 ms | CPU µs/call |");
    println!("|---|---:|---:|---:|");
    for (side, lat, cpu) in [
        ("store", &store, store_cpu),
        ("ceiling", &ceiling, ceiling_cpu),
    ] {
        println!(
            "| {side} | {:.2} | {:.2} | {:.0} |",
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            cpu * 1e6 / calls as f64
        );
    }
    println!(
        "\np50 store/ceiling: {:.2}",
        percentile(&store, 0.5) / percentile(&ceiling, 0.5)
    );
}

/// Both sides through a proxy that adds `delay` to every request, as a network round trip to
/// Azure would: claims, updates and a small listing, the claim concurrency sweep, and claims with
/// a longer delay (`long`), where the emulator's throughput is not what bounds them.
async fn through_latency(bench: &Bench, delay: Duration, long: Duration) {
    let proxied = Proxied::start(bench, delay, &bench.container).await;
    let concurrency = DEFAULT_CLAIM_CONCURRENCY.get();
    let n = 1024;
    let (mut s_claims, mut c_claims, mut s_updates, mut c_updates) =
        (vec![], vec![], vec![], vec![]);
    for rep in 0..bench.reps {
        let (s, c) = proxied
            .claims(&proxied.store, &format!("lat{rep}"), n, concurrency)
            .await;
        s_claims.push(s);
        c_claims.push(c);
        // 32 partitions x 5 updates each, the partitions concurrently (as a consumer does).
        s_updates.push(
            measure(async {
                store_updates(&proxied.store, "upd-s", 32, 5).await;
                160
            })
            .await
            .secs,
        );
        c_updates.push(
            measure(async {
                ceiling_updates(&proxied.ceiling, "upd-c", 32, 5).await;
                160
            })
            .await
            .secs,
        );
    }
    println!(
        "\nthrough a proxy adding {} ms per request (median of {} reps):\n",
        delay.as_millis(),
        bench.reps
    );
    println!("| workload | store ms | ceiling ms | store/ceiling | bound ms |");
    println!("|---|---:|---:|---:|---:|");
    let bound = claims_bound(n, concurrency, delay);
    for (workload, s, c, bound) in [
        (
            format!("claim {n} new partitions (concurrency {concurrency})"),
            median_secs(s_claims),
            median_secs(c_claims),
            format!("{:.0}", bound * 1e3),
        ),
        (
            "32 partitions x 5 checkpoint updates".to_owned(),
            median_secs(s_updates),
            median_secs(c_updates),
            String::new(),
        ),
    ] {
        println!(
            "| {workload} | {:.0} | {:.0} | {:.2} | {bound} |",
            s * 1e3,
            c * 1e3,
            c / s
        );
    }
    let small = Proxied::start(bench, delay, SMALL_CONTAINER).await;
    list_small(
        &small.store,
        &small.ceiling,
        50,
        &format!(" through the {} ms proxy", delay.as_millis()),
    )
    .await;

    println!(
        "\nclaim {n} new partitions through the {} ms proxy, by claim_concurrency (median of {} reps; bound = 1.2 x ceil({n}/c) x {} ms):\n",
        delay.as_millis(),
        bench.reps,
        delay.as_millis()
    );
    println!("| claim_concurrency | store ms | ceiling ms | store claims/s | bound ms |");
    println!("|---:|---:|---:|---:|---:|");
    for c in [8usize, 16, 32, 64, 128, 256] {
        let (mut s_runs, mut c_runs) = (vec![], vec![]);
        let store = proxied.store_with(c);
        for rep in 0..bench.reps {
            let (s, c) = proxied
                .claims(&store, &format!("latsweep{c}-{rep}"), n, c)
                .await;
            s_runs.push(s);
            c_runs.push(c);
        }
        let (s, ceiling) = (median_secs(s_runs), median_secs(c_runs));
        println!(
            "| {c} | {:.0} | {:.0} | {:.0} | {:.0} |",
            s * 1e3,
            ceiling * 1e3,
            n as f64 / s,
            claims_bound(n, c, delay) * 1e3
        );
    }

    // With a longer round trip the emulator is no longer the limit (32 claims per 50 ms is 640
    // requests/s): the time is the round trips', as against Azure.
    let proxied = Proxied::start(bench, long, &bench.container).await;
    let (mut s_runs, mut c_runs) = (vec![], vec![]);
    for rep in 0..bench.reps {
        let (s, c) = proxied
            .claims(&proxied.store, &format!("long{rep}"), n, concurrency)
            .await;
        s_runs.push(s);
        c_runs.push(c);
    }
    let (s, c) = (median_secs(s_runs), median_secs(c_runs));
    println!(
        "\nclaim {n} new partitions (concurrency {concurrency}) through a {} ms proxy: store {:.0} ms, ceiling {:.0} ms, store/ceiling {:.2}, bound 1.2 x ceil({n}/{concurrency}) x {} ms = {:.0} ms",
        long.as_millis(),
        s * 1e3,
        c * 1e3,
        c / s,
        long.as_millis(),
        claims_bound(n, concurrency, long) * 1e3
    );
}

/// The bound on claiming `n` partitions `concurrency` at a time with `delay` per request.
fn claims_bound(n: usize, concurrency: usize, delay: Duration) -> f64 {
    1.2 * n.div_ceil(concurrency) as f64 * delay.as_secs_f64()
}

fn median_secs(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A store and a ceiling that both reach Azurite through a latency proxy.
struct Proxied {
    store: BlobCheckpointStore,
    ceiling: Ceiling,
    endpoint: String,
    container: String,
    sas: String,
}

impl Proxied {
    async fn start(bench: &Bench, delay: Duration, container: &str) -> Self {
        let proxy = latency_proxy(bench.upstream(), delay).await;
        let endpoint = format!("http://{proxy}/devstoreaccount1");
        let (store, _) = sas_store(&endpoint, container, &bench.sas, DEFAULT_CLAIM_CONCURRENCY);
        let ceiling = Ceiling::new(&endpoint, container, &bench.sas, false);
        Self {
            store,
            ceiling,
            endpoint,
            container: container.to_owned(),
            sas: bench.sas.clone(),
        }
    }

    /// Another store through the same proxy, with `concurrency`.
    fn store_with(&self, concurrency: usize) -> BlobCheckpointStore {
        sas_store(
            &self.endpoint,
            &self.container,
            &self.sas,
            NonZeroUsize::new(concurrency).unwrap(),
        )
        .0
    }

    /// Seconds to claim `n` new partitions of `group` through `store`, then through the ceiling
    /// `concurrency` at a time.
    async fn claims(
        &self,
        store: &BlobCheckpointStore,
        group: &str,
        n: usize,
        concurrency: usize,
    ) -> (f64, f64) {
        let input = claims(&format!("{group}-s"), n, "o");
        let s = measure(async { store.claim_ownership(&input).await.unwrap().len() })
            .await
            .secs;
        let prefix = format!("{NS}/{EH}/{group}-c/ownership/");
        let c = measure(async {
            self.ceiling.put_new_all(&prefix, n, concurrency).await;
            n
        })
        .await
        .secs;
        (s, c)
    }
}

/// A TCP proxy to `upstream` that forwards each chunk a client sends `delay` after it arrived
/// (responses go back at once), one upstream connection per client connection, so keep-alive
/// and pooling behave as they do against Azure: each request is delayed by `delay`.
async fn latency_proxy(upstream: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    proxy(upstream, delay, Delays::PerChunk, Arc::default()).await
}

/// How a proxy delays what a client sends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Delays {
    /// Each chunk leaves `delay` after it arrived, whatever came before it (`latency_proxy`).
    PerChunk,
    /// Read, wait `delay`, forward, read the next: a naive proxy, which charges a request sent in
    /// two writes twice and queues requests behind each other's delays.
    PerReadInOrder,
}

/// What a proxy saw of one client, in ms: the emulator's time (a request's first chunk
/// forwarded to the first bytes of its response), the client's (those bytes to the next
/// request's first chunk on the connection), how late the proxy forwarded chunks past their
/// delay; the connections it accepted and chunks it forwarded; and, added by the bench around
/// its runs, the CPU ticks the emulator and the bench process spent meanwhile.
#[derive(Default)]
struct Seen {
    upstream: Vec<f64>,
    client: Vec<f64>,
    late: Vec<f64>,
    connections: usize,
    chunks: usize,
    emulator_ticks: u64,
    bench_ticks: u64,
}

impl Seen {
    fn add(&mut self, more: Seen) {
        self.upstream.extend(more.upstream);
        self.client.extend(more.client);
        self.late.extend(more.late);
        self.connections += more.connections;
        self.chunks += more.chunks;
        self.emulator_ticks += more.emulator_ticks;
        self.bench_ticks += more.bench_ticks;
    }

    /// The columns of `behind_a_slow_network`'s second table, for runs that took `secs` in all.
    fn row(&mut self, secs: f64) -> String {
        let requests = self.upstream.len() as f64;
        let mut cells = Vec::new();
        for samples in [&mut self.upstream, &mut self.client, &mut self.late] {
            samples.sort_by(f64::total_cmp);
            for q in [0.5, 0.99] {
                cells.push(format!("{:.2}", percentile(samples, q)));
            }
        }
        let per_request =
            |ticks: u64| ticks as f64 / common::cpu::TICKS_PER_SECOND * 1e6 / requests;
        format!(
            "{} | {} | {:.2} | {:.0} | {:.0} | {:.0}% |",
            cells.join(" | "),
            self.connections,
            self.chunks as f64 / requests,
            per_request(self.emulator_ticks),
            per_request(self.bench_ticks),
            self.emulator_ticks as f64 / common::cpu::TICKS_PER_SECOND / secs * 100.0,
        )
    }
}

/// The pid of the emulator listening on `port`, from its command line.
fn emulator_pid(port: u16) -> String {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{pid}/cmdline")) {
            let args: Vec<&str> = cmd.split('\0').collect();
            if args
                .windows(2)
                .any(|w| w[0] == "--blobPort" && w[1] == port.to_string())
            {
                return pid;
            }
        }
    }
    panic!("no emulator on port {port}")
}

/// A connection's request in flight, between a proxy's tasks: when its first chunk went to the
/// emulator, and when the first bytes of its response came back.
#[derive(Default)]
struct InFlight {
    forwarded: Option<Instant>,
    answered: Option<Instant>,
}

/// A TCP proxy to `upstream` that delays what clients send by `delay` (`delays` says how), one
/// upstream connection per client connection, and records in `seen` where requests' time went.
async fn proxy(
    upstream: std::net::SocketAddr,
    delay: Duration,
    delays: Delays,
    seen: Arc<Mutex<Seen>>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                seen.lock().unwrap().connections += 1;
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let in_flight = Arc::new(Mutex::new(InFlight::default()));
                // Read and forward separately, so a request sent in several writes is delayed
                // once (each chunk leaves `delay` after it arrived), not once per write; or, for
                // the naive proxy, read the next chunk only once the last one went out.
                let (chunks, mut arrived) = tokio::sync::mpsc::unbounded_channel();
                let (sent, mut forwarded) = tokio::sync::mpsc::unbounded_channel::<()>();
                let read = {
                    let (seen, in_flight) = (seen.clone(), in_flight.clone());
                    async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                            let now = Instant::now();
                            if let Some(answered) = in_flight.lock().unwrap().answered.take() {
                                seen.lock().unwrap().client.push(ms(now - answered));
                            }
                            let due = tokio::time::Instant::from_std(now) + delay;
                            if chunks.send((due, buf[..n].to_vec())).is_err() {
                                break;
                            }
                            if delays == Delays::PerReadInOrder && forwarded.recv().await.is_none()
                            {
                                break;
                            }
                        }
                    }
                };
                let requests = {
                    let (seen, in_flight) = (seen.clone(), in_flight.clone());
                    async move {
                        while let Some((due, chunk)) = arrived.recv().await {
                            tokio::time::sleep_until(due).await;
                            if server_write.write_all(&chunk).await.is_err() {
                                break;
                            }
                            let now = Instant::now();
                            in_flight.lock().unwrap().forwarded.get_or_insert(now);
                            {
                                let mut seen = seen.lock().unwrap();
                                seen.chunks += 1;
                                seen.late.push(ms(now - due.into_std()));
                            }
                            let _ = sent.send(());
                        }
                        let _ = server_write.shutdown().await;
                    }
                };
                let responses = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                        let now = Instant::now();
                        let forwarded = {
                            let mut flight = in_flight.lock().unwrap();
                            let forwarded = flight.forwarded.take();
                            if forwarded.is_some() {
                                flight.answered = Some(now);
                            }
                            forwarded
                        };
                        if let Some(forwarded) = forwarded {
                            seen.lock().unwrap().upstream.push(ms(now - forwarded));
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(read, requests, responses);
            });
        }
    });
    addr
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
            .list_ownership(&Scope::new(NS, EH, format!("re{n}-s")))
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
            .list_ownership(&Scope::new(NS, EH, format!("re{n}-c")))
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
                            .list_ownership(&Scope::new(NS, EH, format!("list{n}")))
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
                        .list_checkpoints(&Scope::new(NS, EH, format!("cp{n}")))
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
                (NS, EH, format!("upd-{side}")),
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
            |_| async {
                store_updates(&bench.store, "upd-s", partitions, updates).await;
            },
            |_| async {
                ceiling_updates(&bench.ceiling, "upd-c", partitions, updates).await;
            },
        )
        .await
}

/// `updates` writes to each of `partitions` partitions, the partitions concurrently and each
/// one's writes in order, as a consumer makes them; each write's latency in ms. `write(p, seq)`
/// makes write `seq` of partition `p`.
async fn per_partition<F, Fut>(partitions: usize, updates: usize, write: F) -> Vec<f64>
where
    F: Fn(usize, usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let write = &write;
    join_all((0..partitions).map(|p| async move {
        let mut latencies = Vec::with_capacity(updates);
        for seq in 0..updates {
            let t = Instant::now();
            write(p, seq).await;
            latencies.push(ms(t.elapsed()));
        }
        latencies
    }))
    .await
    .into_iter()
    .flatten()
    .collect()
}

/// Checkpoint `seq` of partition `p` in `group`.
fn checkpoint_at(group: &str, p: usize, seq: usize) -> Checkpoint {
    Checkpoint::new(
        (NS, EH, group),
        p.to_string(),
        Some(seq.to_string()),
        Some(seq as i64),
    )
}

/// `updates` checkpoint updates of each of `partitions` partitions of `group` through the store's
/// `update_checkpoint` (see `per_partition`).
async fn store_updates(
    store: &BlobCheckpointStore,
    group: &str,
    partitions: usize,
    updates: usize,
) -> Vec<f64> {
    per_partition(partitions, updates, |p, seq| async move {
        store
            .update_checkpoint(&checkpoint_at(group, p, seq))
            .await
            .unwrap();
    })
    .await
}

/// The ceiling's `store_updates`: Set Blob Metadata on blobs that exist.
async fn ceiling_updates(
    ceiling: &Ceiling,
    group: &str,
    partitions: usize,
    updates: usize,
) -> Vec<f64> {
    let names: Vec<String> = (0..partitions)
        .map(|p| format!("{NS}/{EH}/{group}/checkpoint/{p}"))
        .collect();
    let names = &names;
    per_partition(partitions, updates, |p, seq| async move {
        let seq = seq.to_string();
        ceiling
            .set_metadata(
                &names[p],
                &[("offset", &seq), ("sequencenumber", &seq)],
                None,
            )
            .await;
    })
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
    println!("\n| workload | store ops/s | ceiling ops/s | store/ceiling | CPU µs/op store | CPU µs/op ceiling | CPU store/ceiling | store req/op | ceiling req/op | store peak heap | ceiling peak heap |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let ops = row.ops as f64;
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {} | {} |",
            row.workload,
            ops / row.store.secs,
            ops / row.ceiling.secs,
            row.ceiling.secs / row.store.secs,
            row.store.cpu_secs * 1e6 / ops,
            row.ceiling.cpu_secs * 1e6 / ops,
            row.store.cpu_secs / row.ceiling.cpu_secs,
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

/// The slow-network rows: 32 writers x 50 checkpoint updates, and claims of 32 new
/// partitions (a Standard hub's claim: one round trip), through proxies adding 10 and 50 ms, of
/// both kinds; throughput and each request's (updates) or call's (claims) p50 and p99, the sides
/// alternating rep by rep. Each side has a proxy of its own, which also reports where a request's
/// time went (the emulator's, the client's) and the CPU each request cost both processes; and 4
/// writers, a load the emulator serves without queueing, show the client's share of the latency.
async fn behind_a_slow_network(bench: &Bench) {
    const WRITERS: usize = 32;
    const FEW_WRITERS: usize = 4;
    // Each writer's updates and the claim calls: longer runs average more of the emulator's
    // pauses.
    let updates = env_count("BENCH_NET_UPDATES", 50);
    let claim_calls = env_count("BENCH_NET_CLAIM_CALLS", 50);
    const SIDES: [&str; 3] = ["store", "ceiling", "ceiling (h)"];
    // `BENCH_NET_WORKLOADS=32` picks the workloads, `BENCH_NET_PROXIES=chunk` the proxies: more
    // reps of one row in the same time.
    let workloads = picked(
        "BENCH_NET_WORKLOADS",
        [
            ("32", NetWorkload::Updates(WRITERS)),
            ("4", NetWorkload::Updates(FEW_WRITERS)),
            ("claims", NetWorkload::Claims(claim_calls)),
        ],
    );
    let kinds = picked(
        "BENCH_NET_PROXIES",
        [
            ("chunk", Delays::PerChunk),
            ("read", Delays::PerReadInOrder),
        ],
    );
    println!(
        "\nbehind a slow network: {WRITERS} and {FEW_WRITERS} writers x {updates} checkpoint updates, and {claim_calls} claims of 32 new partitions one after another (those BENCH_NET_WORKLOADS picks; {} reps, the order of the sides rotating, each side's connections opened again, untimed, before each run; all samples pooled for p50/p99); the minimal ceiling, and the one that also sends the SDK's two headers (h):\n",
        bench.reps
    );
    println!("| proxy | workload | store ops/s | ceiling ops/s | ceiling (h) ops/s | store/ceiling | store/ceiling (h) | p50 ms store | p50 ms ceiling | p50 ms ceiling (h) | p99 ms store | p99 ms ceiling | p99 ms ceiling (h) | max ms store | max ms ceiling | max ms ceiling (h) | store requests/op |");
    println!(
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    // `BENCH_NET_DELAYS=10` picks the proxies' delays in ms (default 10 and 50).
    let delays_ms: Vec<u64> = std::env::var("BENCH_NET_DELAYS")
        .unwrap_or_else(|_| "10,50".into())
        .split(',')
        .filter_map(|d| d.parse().ok())
        .collect();
    let mut seen_rows = Vec::new();
    let mut rep_rows = Vec::new();
    for delay in delays_ms.into_iter().map(Duration::from_millis) {
        for &delays in &kinds {
            let upstream = bench.upstream();
            let emulator = emulator_pid(upstream.port());
            let ticks = |pid: &str| common::cpu::ticks(pid).expect("the process is running");
            // A proxy per side, so what each one saw is that side's.
            let mut proxies = Vec::new();
            let mut endpoints = Vec::new();
            for _ in SIDES {
                let seen = Arc::<Mutex<Seen>>::default();
                let addr = proxy(upstream, delay, delays, seen.clone()).await;
                endpoints.push(format!("http://{addr}/devstoreaccount1"));
                proxies.push(seen);
            }
            let (store, requests) = sas_store(
                &endpoints[0],
                &bench.container,
                &bench.sas,
                DEFAULT_CLAIM_CONCURRENCY,
            );
            let ceilings = [
                Ceiling::new(&endpoints[1], &bench.container, &bench.sas, false),
                Ceiling::new(&endpoints[2], &bench.container, &bench.sas, true),
            ];
            let tag = format!("net{}{}", delay.as_millis(), delays == Delays::PerChunk);
            // Untimed: the blobs exist (every timed update is the one-request case).
            for p in 0..WRITERS {
                let checkpoint = Checkpoint::new(
                    (NS, EH, format!("{tag}-s")),
                    p.to_string(),
                    Some("0".into()),
                    Some(0),
                );
                store.update_checkpoint(&checkpoint).await.unwrap();
                for (c, ceiling) in ceilings.iter().enumerate() {
                    ceiling
                        .put_new(&format!("{NS}/{EH}/{tag}-c{c}/checkpoint/{p}"), "")
                        .await;
                }
            }
            // Per workload, per side: store, ceiling, ceiling (h).
            let mut samples: Vec<[NetSamples; 3]> =
                workloads.iter().map(|_| Default::default()).collect();
            // Rep 0 is untimed: the emulator (Node.js) compiles its code for each kind of request
            // as it first serves it, which would charge whichever side came first.
            for rep in 0..=bench.reps {
                for (w, workload) in workloads.iter().enumerate() {
                    // The order rotates rep by rep: the emulator slows as it fills.
                    for turn in 0..3 {
                        let side = (rep + turn) % 3;
                        let group = format!("{tag}-{w}-{rep}-{side}");
                        // Untimed: a burst of 32 requests, so every side starts with a full
                        // pool of live connections (the emulator closes those idle for 5 s,
                        // which would otherwise charge whichever side the rotation left idle).
                        match side {
                            0 => drop(store_claims(&store, &format!("{group}-warm"), 1).await),
                            c => drop(
                                ceiling_claims(&ceilings[c - 1], &format!("{group}-warm"), 1).await,
                            ),
                        }
                        std::mem::take(&mut *proxies[side].lock().unwrap());
                        requests.take();
                        let cpu = (ticks(&emulator), ticks("self"));
                        let start = Instant::now();
                        let latencies = match (workload, side) {
                            (NetWorkload::Updates(writers), 0) => {
                                store_updates(&store, &format!("{tag}-s"), *writers, updates).await
                            }
                            (NetWorkload::Updates(writers), c) => {
                                ceiling_updates(
                                    &ceilings[c - 1],
                                    &format!("{tag}-c{}", c - 1),
                                    *writers,
                                    updates,
                                )
                                .await
                            }
                            (NetWorkload::Claims(calls), 0) => {
                                store_claims(&store, &group, *calls).await
                            }
                            (NetWorkload::Claims(calls), c) => {
                                ceiling_claims(&ceilings[c - 1], &group, *calls).await
                            }
                        };
                        let secs = start.elapsed().as_secs_f64();
                        if rep == 0 {
                            continue;
                        }
                        let into = &mut samples[w][side];
                        into.secs.push(secs);
                        into.latencies.extend(latencies);
                        into.seen
                            .add(std::mem::take(&mut *proxies[side].lock().unwrap()));
                        into.seen.emulator_ticks += ticks(&emulator) - cpu.0;
                        into.seen.bench_ticks += ticks("self") - cpu.1;
                        if side == 0 {
                            into.store_requests += requests.take();
                        }
                    }
                }
            }
            let proxy_name = format!(
                "{} ms, {}",
                delay.as_millis(),
                match delays {
                    Delays::PerChunk => "per chunk",
                    Delays::PerReadInOrder => "per read, in order",
                }
            );
            for (workload, sides) in workloads.iter().zip(&mut samples) {
                let (name, ops) = match workload {
                    NetWorkload::Updates(writers) => (
                        format!("{writers} x {updates} updates"),
                        (writers * updates) as f64,
                    ),
                    NetWorkload::Claims(calls) => {
                        (format!("claim 32, {calls} calls"), (32 * calls) as f64)
                    }
                };
                let stats: Vec<(f64, f64, f64, f64)> = sides
                    .iter_mut()
                    .map(|side| {
                        side.latencies.sort_by(f64::total_cmp);
                        (
                            ops / median_secs(side.secs.clone()),
                            percentile(&side.latencies, 0.5),
                            percentile(&side.latencies, 0.99),
                            percentile(&side.latencies, 1.0),
                        )
                    })
                    .collect();
                let [s, c, h] = [stats[0], stats[1], stats[2]];
                println!(
                    "| {proxy_name} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.3} |",
                    s.0, c.0, h.0, s.0 / c.0, s.0 / h.0, s.1, c.1, h.1, s.2, c.2, h.2, s.3, c.3, h.3,
                    sides[0].store_requests as f64 / (ops * bench.reps as f64)
                );
                rep_rows.push(format!(
                    "| {proxy_name} | {name} | {} | {} | {} |",
                    per_rep(&sides[0].secs, &sides[1].secs),
                    per_rep(&sides[0].secs, &sides[2].secs),
                    per_rep(&sides[1].secs, &sides[2].secs),
                ));
                for (side, samples) in SIDES.iter().zip(sides.iter_mut()) {
                    seen_rows.push(format!(
                        "| {proxy_name} | {name} | {side} | {}",
                        samples.seen.row(samples.secs.iter().sum())
                    ));
                }
            }
        }
    }
    println!("\nwhat each side's proxy saw in the same runs: where a request's time went, in ms (the emulator's: its first chunk forwarded to the response's first bytes; the client's: those bytes to the next request on the connection; the proxy's lateness past its delay), the connections opened during the timed runs, each request's CPU in µs, the emulator's and the bench process's (the client and its proxy), and the share of the runs' time the emulator was on its CPU (near 100%, the emulator is what limits the row):\n");
    println!("| proxy | workload | side | emulator p50 | emulator p99 | client p50 | client p99 | late p50 | late p99 | connections | chunks/request | emulator CPU µs/request | bench CPU µs/request | emulator busy |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in seen_rows {
        println!("{row}");
    }
    println!("\nthe same runs rep by rep: one side's throughput over another's within each rep (the sides' runs of a rep are back to back), median [min-max] over the reps, then their geometric mean (~95% interval: its log ± 2 standard errors); the two ceilings send the same requests but for two headers, so their ratio is how far apart two equal clients come out here:\n");
    println!("| proxy | workload | store/ceiling | store/ceiling (h) | ceiling/ceiling (h) |");
    println!("|---|---|---:|---:|---:|");
    for row in rep_rows {
        println!("{row}");
    }
}

/// The choices the comma-separated names in `var` pick, in `choices`' order; all of them when
/// `var` is unset.
fn picked<T: Copy, const N: usize>(var: &str, choices: [(&str, T); N]) -> Vec<T> {
    let Ok(names) = std::env::var(var) else {
        return choices.iter().map(|&(_, choice)| choice).collect();
    };
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    for name in &names {
        assert!(
            choices.iter().any(|(known, _)| known == name),
            "{var}: no {name:?}; one of {:?}",
            choices.map(|(known, _)| known)
        );
    }
    choices
        .iter()
        .filter(|(known, _)| names.contains(known))
        .map(|&(_, choice)| choice)
        .collect()
}

/// `a`'s throughput over `b`'s rep by rep (`a_secs[i]` and `b_secs[i]` timed the same work in
/// rep `i`): "median [min-max], geometric mean (its ~95% interval)". The interval is the mean of
/// the log ratios ± 2 standard errors: how finely the run pins the ratio down, so more reps
/// narrow it where the range would only widen. It takes reps as independent, which they are not
/// quite (the emulator slows as it fills, its pauses span runs): read it beside the two
/// ceilings' own ratio.
fn per_rep(a_secs: &[f64], b_secs: &[f64]) -> String {
    let mut ratios: Vec<f64> = a_secs.iter().zip(b_secs).map(|(a, b)| b / a).collect();
    ratios.sort_by(f64::total_cmp);
    let [median, min, max] = [0.5, 0.0, 1.0].map(|q| percentile(&ratios, q));
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let half = 2.0 * (var / n).sqrt();
    format!(
        "{median:.2} [{min:.2}-{max:.2}], {:.3} ({:.3}-{:.3})",
        mean.exp(),
        (mean - half).exp(),
        (mean + half).exp()
    )
}

/// A timed workload of `behind_a_slow_network`.
#[derive(Clone, Copy)]
enum NetWorkload {
    /// This many writers, each updating its partition's checkpoint in order (50 times, unless
    /// `BENCH_NET_UPDATES` says otherwise).
    Updates(usize),
    /// This many claims of 32 new partitions, one after another.
    Claims(usize),
}

/// One side's samples of one workload in `behind_a_slow_network`: each update's or claim call's
/// latency (ms), each rep's seconds, what its proxy saw; and the requests the store sent (every
/// try), for the store's side.
#[derive(Default)]
struct NetSamples {
    latencies: Vec<f64>,
    secs: Vec<f64>,
    seen: Seen,
    store_requests: usize,
}

/// `calls` claims of 32 new partitions one after another (groups `{group}-{call}-s`), each
/// call's latency in ms.
async fn store_claims(store: &BlobCheckpointStore, group: &str, calls: usize) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(calls);
    for call in 0..calls {
        let input = claims(&format!("{group}-{call}-s"), 32, "o");
        let t = Instant::now();
        assert_eq!(store.claim_ownership(&input).await.unwrap().len(), 32);
        latencies.push(ms(t.elapsed()));
    }
    latencies
}

/// The ceiling's `store_claims` (groups `{group}-{call}-c`).
async fn ceiling_claims(ceiling: &Ceiling, group: &str, calls: usize) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(calls);
    for call in 0..calls {
        let prefix = format!("{NS}/{EH}/{group}-{call}-c/ownership/");
        let t = Instant::now();
        ceiling.put_new_all(&prefix, 32, 32).await;
        latencies.push(ms(t.elapsed()));
    }
    latencies
}

/// 32 partitions x `updates` checkpoint updates by one path (see `profile_listing`).
async fn profile_updates(bench: &Bench, side: &str, updates: usize) {
    use eventhub_checkpointstore::checkpointer::{Checkpointer, CheckpointerOptions};
    const PARTITIONS: usize = 32;
    let group = format!("prof-{side}");
    let group = group.as_str();
    match side {
        "store" => {
            store_updates(&bench.store, group, PARTITIONS, updates).await;
        }
        "advance" => {
            per_partition(PARTITIONS, updates, |p, seq| async move {
                bench
                    .store
                    .advance_checkpoint(&checkpoint_at(group, p, seq))
                    .await
                    .unwrap();
            })
            .await;
        }
        "checkpointer" => {
            let checkpointer = Checkpointer::new(
                Arc::new(bench.store.clone()),
                (NS, EH, group),
                CheckpointerOptions {
                    every_events: NonZeroU64::new(1),
                    every: None,
                },
            )
            .unwrap();
            let (checkpointer, ids) = (
                &checkpointer,
                &(0..PARTITIONS).map(|p| p.to_string()).collect::<Vec<_>>(),
            );
            per_partition(PARTITIONS, updates, |p, seq| async move {
                assert!(checkpointer
                    .record(&ids[p], Some(seq.to_string()), Some(seq as i64))
                    .await
                    .unwrap());
            })
            .await;
        }
        _ => {
            for p in 0..PARTITIONS {
                bench
                    .ceiling
                    .put_new(&format!("{NS}/{EH}/{group}/checkpoint/{p}"), "")
                    .await;
            }
            ceiling_updates(&bench.ceiling, group, PARTITIONS, updates).await;
        }
    }
}

/// `iterations` listings of 1,000 `record`s (`checkpoint` or `ownership`) through the table store.
async fn profile_table_listing(record: &str, iterations: usize) {
    use eventhub_checkpointstore::TableCheckpointStore;
    const RECORDS: usize = 1000;
    let connection = std::env::var("AZURITE_CONNECTION_STRING").unwrap();
    let store = TableCheckpointStore::from_connection_string(
        &connection,
        &common::unique_container(),
        None,
    )
    .unwrap();
    store.create_table_if_missing().await.unwrap();
    let scope = Scope::new(NS, EH, format!("profile-{record}"));
    let claims: Vec<Ownership> = (0..RECORDS)
        .map(|p| scope.ownership(p.to_string(), "o"))
        .collect();
    if record == "checkpoint" {
        join_all((0..RECORDS).map(|p| {
            let checkpoint = scope.checkpoint(p.to_string(), Some("1024".into()), Some(1));
            let store = &store;
            async move { store.update_checkpoint(&checkpoint).await.unwrap() }
        }))
        .await;
    } else {
        assert_eq!(store.claim_ownership(&claims).await.unwrap().len(), RECORDS);
    }
    for _ in 0..iterations {
        let listed = if record == "checkpoint" {
            store.list_checkpoints(&scope).await.unwrap().len()
        } else {
            store.list_ownership(&scope).await.unwrap().len()
        };
        assert_eq!(listed, RECORDS);
    }
}
