//! The `eh-checkpoints` binary (feature `cli`), run as a user runs it, against Azurite: each
//! command's output and exit code, the refusal to move a live partition's checkpoint, dry runs that
//! write nothing (checked by listing through the library), export then import into another group,
//! copies across layouts and into the table store, and secrets absent from every output.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use eventhub_checkpointstore::{
    BlobCheckpointStoreOptions, BlobNaming, Checkpoint, CheckpointStore, Ownership,
    TableCheckpointStore, DEVELOPMENT_ACCOUNT_KEY,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

const NS: &str = "cli.servicebus.windows.net";
const EH: &str = "Telemetry";
const CG: &str = "$Default";

/// What a run of the binary left: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `eh-checkpoints ARGS` with the Azurite connection string in the environment.
fn run(args: &[&str]) -> Run {
    run_with_input(args, None)
}

fn run_with_input(args: &[&str], input: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eh-checkpoints"))
        .args(args)
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            common::connection_string(),
        )
        .env_remove("AZURE_STORAGE_SAS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eh-checkpoints");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(DEVELOPMENT_ACCOUNT_KEY) && !text.contains("sig="),
            "a secret in the output of {args:?}: {text}"
        );
    }
    run
}

/// The scope arguments for `container`, given after the subcommand as a user would.
fn scope(container: &str) -> Vec<String> {
    [
        "--container",
        container,
        "--namespace",
        NS,
        "--eventhub",
        EH,
    ]
    .map(String::from)
    .to_vec()
}

fn args<'a>(command: &'a str, scope: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![command];
    all.extend(scope.iter().map(String::as_str));
    all.extend_from_slice(more);
    all
}

/// Partition → (offset, sequence number), through the library.
async fn positions(
    store: &dyn CheckpointStore,
    group: &str,
) -> BTreeMap<String, (Option<String>, Option<i64>)> {
    store
        .list_checkpoints(&Scope::new(NS, EH, group))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, (c.offset, c.sequence_number)))
        .collect()
}

/// A container with checkpoints for partitions 0..4 and live claims on 0 and 1.
async fn seeded() -> (String, eventhub_checkpointstore::BlobCheckpointStore) {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    for p in 0..4i64 {
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                p.to_string(),
                Some((p * 100).to_string()),
                Some(p),
            ))
            .await
            .unwrap();
    }
    let claims = [
        Ownership::new((NS, EH, CG), "0", "consumer-a"),
        Ownership::new((NS, EH, CG), "1", "consumer-b"),
    ];
    assert_eq!(store.claim_ownership(&claims).await.unwrap().len(), 2);
    (container, store)
}

#[tokio::test]
async fn list_shows_owners_ages_expiry_and_positions() {
    let (container, _store) = seeded().await;
    let scope = scope(&container);
    let json = run(&args("list", &scope, &["--output", "json"]));
    assert_eq!(json.code, 0, "{}", json.stderr);
    let rows: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["partition_id"], "0");
    assert_eq!(rows[0]["owner_id"], "consumer-a");
    assert_eq!(rows[0]["expired"], false, "renewed just now");
    assert!(rows[0]["last_modified"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rows[2]["owner_id"], Value::Null);
    assert_eq!(rows[2]["expired"], true, "nobody owns it");
    assert_eq!(rows[3]["offset"], "300");
    assert_eq!(rows[3]["sequence_number"], 3);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "expired",
            "last_modified",
            "offset",
            "owner_id",
            "partition_id",
            "sequence_number"
        ]
    );

    // Not a terminal: JSON by default. A table on request.
    assert_eq!(run(&args("list", &scope, &[])).stdout, json.stdout);
    let table = run(&args("list", &scope, &["--output", "table"]));
    assert!(table.stdout.contains("PARTITION") && table.stdout.contains("consumer-b"));
    assert!(table
        .stdout
        .contains("4 partitions of cli.servicebus.windows.net/Telemetry/$Default"));

    // With a short expiration, the claims expire (judged by the service's clock).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = run(&args(
        "list",
        &scope,
        &["--expiration", "1s", "--output", "json"],
    ));
    let rows: Vec<Value> = serde_json::from_str(&later.stdout).unwrap();
    assert!(rows.iter().all(|r| r["expired"] == true), "{rows:?}");
}

#[tokio::test]
async fn set_refuses_a_live_partition_and_dry_runs_write_nothing() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    let before = positions(&store, CG).await;

    let refused = run(&args(
        "set",
        &scope,
        &["--partition", "0", "--sequence-number", "42"],
    ));
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("owned by consumer-a"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        refused.stderr.lines().count(),
        1,
        "one line: {}",
        refused.stderr
    );

    let dry = run(&args(
        "set",
        &scope,
        &["--partition", "2", "--sequence-number", "42", "--dry-run"],
    ));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry
        .stdout
        .contains("would write checkpoint partition 2: sequence number 42"));
    assert_eq!(
        positions(&store, CG).await,
        before,
        "a dry run writes nothing"
    );

    let free = run(&args(
        "set",
        &scope,
        &[
            "--partition",
            "2",
            "--sequence-number",
            "42",
            "--offset",
            "4200",
        ],
    ));
    assert_eq!(free.code, 0, "{}", free.stderr);
    let forced = run(&args(
        "set",
        &scope,
        &["--partition", "0", "--sequence-number", "-1", "--force"],
    ));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let after = positions(&store, CG).await;
    assert_eq!(after["2"], (Some("4200".into()), Some(42)));
    assert_eq!(
        after["0"],
        (None, Some(-1)),
        "a checkpoint at a sequence number only"
    );
}

#[tokio::test]
async fn release_is_conditional_and_filtered() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    let owners = || async {
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.partition_id, o.owner_id))
            .collect::<BTreeMap<_, _>>()
    };
    let dry = run(&args("release", &scope, &["--all", "--dry-run"]));
    assert_eq!(dry.code, 0);
    assert!(
        dry.stdout.contains("would release partition 0")
            && dry.stdout.contains("would release partition 1")
    );
    assert_eq!(owners().await["0"].as_deref(), Some("consumer-a"));

    let one = run(&args(
        "release",
        &scope,
        &["--all", "--owner", "consumer-b"],
    ));
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.stdout.trim(), "released partition 1");
    let now = owners().await;
    assert_eq!(
        (now["0"].as_deref(), now["1"].as_deref()),
        (Some("consumer-a"), None)
    );

    let usage = run(&args("release", &scope, &[]));
    assert_eq!(
        usage.code, 2,
        "neither --partition nor --all: {}",
        usage.stderr
    );
}

#[tokio::test]
async fn export_then_import_into_another_group_equals_the_source() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    let exported = run(&args("export", &scope, &[]));
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert_eq!(exported.stdout.lines().count(), 4);

    let mut into_replay = args("import", &scope, &["--consumer-group", "replay"]);
    into_replay.push("--dry-run");
    let dry = run_with_input(&into_replay, Some(&exported.stdout));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        positions(&store, "replay").await.is_empty(),
        "a dry run writes nothing"
    );
    into_replay.pop();
    let imported = run_with_input(&into_replay, Some(&exported.stdout));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert_eq!(
        positions(&store, "replay").await,
        positions(&store, CG).await
    );

    let bad = run_with_input(
        &args("import", &scope, &[]),
        Some("{\"partition_id\": 1}\n"),
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("line 1"), "{}", bad.stderr);
}

#[tokio::test]
async fn copy_across_layouts_and_into_the_table_store() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    let source = positions(&store, CG).await;

    let dry = run(&args(
        "migrate",
        &scope,
        &["--to-naming", "verbatim", "--dry-run"],
    ));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let verbatim = common::store_on(
        &container,
        Some(BlobCheckpointStoreOptions {
            naming: BlobNaming::Verbatim,
            ..Default::default()
        }),
    );
    assert!(
        positions(&verbatim, CG).await.is_empty(),
        "a dry run writes nothing"
    );
    let migrated = run(&args("migrate", &scope, &["--to-naming", "verbatim"]));
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    assert!(migrated.stdout.contains("wrote 4 checkpoint(s)"));
    assert_eq!(positions(&verbatim, CG).await, source);
    let same_layout = run(&args("migrate", &scope, &[]));
    assert_eq!(same_layout.code, 2, "{}", same_layout.stderr);

    let table = common::unique_container();
    let copied = run(&args("copy", &scope, &["--to-table", &table]));
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    let table_store =
        TableCheckpointStore::from_connection_string(&common::connection_string(), &table, None)
            .unwrap();
    assert_eq!(positions(&table_store, CG).await, source);
    // Ownership is copied only when asked.
    assert!(table_store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn exit_codes_and_one_line_errors_without_secrets() {
    let container = common::unique_container();
    let scope = scope(&container);
    let missing_container = run(&args("list", &scope, &[]));
    assert_eq!(missing_container.code, 1);
    assert!(missing_container.stderr.contains("404 (ContainerNotFound)"));
    assert_eq!(missing_container.stderr.lines().count(), 1);

    let no_store = run(&["list", "--namespace", NS, "--eventhub", EH]);
    assert_eq!(no_store.code, 2);
    assert!(
        no_store.stderr.contains("--container"),
        "{}",
        no_store.stderr
    );

    let wrong_key = Command::new(env!("CARGO_BIN_EXE_eh-checkpoints"))
        .args(["list", "--verbose"])
        .args(&scope)
        .arg("--connection-string")
        .arg(common::connection_string().replace(
            DEVELOPMENT_ACCOUNT_KEY,
            "d3Jvbmcga2V5IG9mIHRoZSByaWdodCBsZW5ndGg=",
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8(wrong_key.stderr).unwrap();
    assert_eq!(wrong_key.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(stderr.lines().count() > 1, "--verbose logs the requests");
    assert!(
        !stderr.contains("d3Jvbmcga2V5IG9mIHRoZSByaWdodCBsZW5ndGg="),
        "{stderr}"
    );

    let bad_string = run(&[
        "list",
        "--connection-string",
        "AccountName=x;AccountKey=not base64!",
        "--container",
        "abc",
        "--namespace",
        NS,
        "--eventhub",
        EH,
    ]);
    assert_eq!(bad_string.code, 2, "{}", bad_string.stderr);
    assert!(
        !bad_string.stderr.contains("not base64!"),
        "{}",
        bad_string.stderr
    );
}
