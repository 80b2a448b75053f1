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
    run_in(
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            Some(&common::connection_string()),
        )],
        args,
        input,
    )
}

/// Runs `eh-checkpoints ARGS` with exactly `env` as the storage variables (`None`: unset).
fn run_in(env: &[(&str, Option<&str>)], args: &[&str], input: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eh-checkpoints"));
    command
        .args(args)
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_SAS")
        .env_remove("EVENTHUBS_CONNECTION_STRING");
    for (name, value) in env {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    let mut child = command
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
        let signature_shown = text
            .match_indices("sig=")
            .any(|(at, _)| !text[at + 4..].starts_with("REDACTED"));
        assert!(
            !text.contains(DEVELOPMENT_ACCOUNT_KEY) && !signature_shown,
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

/// Partition → (offset, sequence number) of consumer group `group`, through the library.
async fn positions(
    store: &dyn CheckpointStore,
    group: &str,
) -> BTreeMap<String, (Option<String>, Option<i64>)> {
    common::positions(store, &Scope::new(NS, EH, group)).await
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
    let lines: Vec<&str> = refused.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "where, then why: {}", refused.stderr);
    assert!(
        lines[0].contains(&container) && lines[0].contains("consumer group"),
        "it says where it would write first: {}",
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
        &["--partition", "0", "--sequence-number", "7", "--force"],
    ));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let after = positions(&store, CG).await;
    assert_eq!(after["2"], (Some("4200".into()), Some(42)));
    assert_eq!(
        after["0"],
        (None, Some(7)),
        "a checkpoint at a sequence number only"
    );
}

#[tokio::test]
async fn set_never_moves_a_checkpoint_back_unless_forced_and_says_what_it_moved() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    // Partition 3 is free, at sequence number 3.
    let back = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "1"],
    ));
    assert_eq!(back.code, 2, "{}", back.stderr);
    assert!(
        back.stderr
            .contains("partition 3 is at sequence number 3, offset 300; sequence number 1")
            && back.stderr.contains("would move it back"),
        "{}",
        back.stderr
    );
    assert_eq!(
        positions(&store, CG).await["3"].1,
        Some(3),
        "nothing written"
    );

    let dry = run(&args(
        "set",
        &scope,
        &[
            "--partition",
            "3",
            "--sequence-number",
            "1",
            "--force",
            "--dry-run",
        ],
    ));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry
        .stdout
        .contains("would move partition 3 back from sequence number 3"));
    assert_eq!(
        positions(&store, CG).await["3"].1,
        Some(3),
        "nothing written"
    );

    let rewind = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "1", "--force"],
    ));
    assert_eq!(rewind.code, 0, "{}", rewind.stderr);
    assert!(
        rewind.stdout.contains(
            "moved partition 3 back from sequence number 3, offset 300 to sequence number 1, offset none"
        ),
        "{}",
        rewind.stdout
    );
    assert_eq!(positions(&store, CG).await["3"], (None, Some(1)));

    // Forward, and to where it is: no force needed.
    let ahead = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "9"],
    ));
    assert_eq!(ahead.code, 0, "{}", ahead.stderr);
    let again = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "9"],
    ));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("already there"), "{}", again.stdout);

    // Negative sequence numbers are a usage error.
    let negative = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "-1", "--force"],
    ));
    assert_eq!(negative.code, 2, "{}", negative.stderr);
    assert_eq!(positions(&store, CG).await["3"].1, Some(9));
}

/// What trips a newcomer gets a hint: a partition the group has no record of (a typo) is
/// refused without --force, naming the partitions it has; a negative number is a value out of
/// range, not a flag; `-o` is `--output`; the namespace and event hub come from an Event Hubs
/// connection string in the environment when not given.
#[tokio::test]
async fn newcomer_mistakes_get_hints() {
    let (container, store) = seeded().await;
    let scope = scope(&container);
    let typo = run(&args(
        "set",
        &scope,
        &["--partition", "99", "--sequence-number", "5"],
    ));
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr
            .contains("partition 99 has no ownership or checkpoint record")
            && typo
                .stderr
                .contains("has records for partitions 0, 1, 2, 3")
            && typo.stderr.contains("--force"),
        "{}",
        typo.stderr
    );
    assert!(!positions(&store, CG).await.contains_key("99"));
    let forced = run(&args(
        "set",
        &scope,
        &["--partition", "99", "--sequence-number", "5", "--force"],
    ));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(positions(&store, CG).await["99"].1, Some(5));

    let negative = run(&args(
        "set",
        &scope,
        &["--partition", "3", "--sequence-number", "-5"],
    ));
    assert_eq!(negative.code, 2, "{}", negative.stderr);
    assert!(
        negative.stderr.contains("-5 is not in 0.."),
        "{}",
        negative.stderr
    );

    let listed = run(&args("list", &scope, &["-o", "json"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rows.len(), 5);

    // A scope that matches nothing (the emulator's namespace is `localhost`, say, not the
    // name a user may try): the container's scopes are named.
    let elsewhere = run(&[
        "list",
        "--container",
        &container,
        "--namespace",
        "localhost",
        "--eventhub",
        EH,
        "-o",
        "json",
    ]);
    assert_eq!(elsewhere.code, 0, "{}", elsewhere.stderr);
    assert_eq!(elsewhere.stdout.trim(), "[]");
    assert!(
        elsewhere.stderr.contains(
            "no records for consumer group localhost/Telemetry/$Default; the container holds \
             records for cli.servicebus.windows.net/telemetry/$default (7 records)"
        ),
        "{}",
        elsewhere.stderr
    );

    #[cfg(feature = "eventhubs")]
    {
        let eventhubs =
            format!("Endpoint=sb://{NS}/;SharedAccessKeyName=k;SharedAccessKey=k;EntityPath={EH}");
        let from_env = run_in(
            &[
                (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    Some(&common::connection_string()),
                ),
                ("EVENTHUBS_CONNECTION_STRING", Some(&eventhubs)),
            ],
            &["list", "--container", &container, "-o", "json"],
            None,
        );
        assert_eq!(from_env.code, 0, "{}", from_env.stderr);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&from_env.stdout).unwrap();
        assert_eq!(rows.len(), 5, "the scope of the connection string");

        // No connection string: the Entra ID credential, and a failure says what else to give.
        let lag = run(&args(
            "lag",
            &scope,
            &[
                "--eventhubs-endpoint",
                "amqp://127.0.0.1:9",
                "--timeout",
                "3s",
            ],
        ));
        assert_eq!(lag.code, 1, "{}", lag.stderr);
        assert!(
            lag.stderr.contains("--eventhubs-connection-string")
                && lag.stderr.contains("EVENTHUBS_CONNECTION_STRING"),
            "{}",
            lag.stderr
        );
    }
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
    assert_eq!(dry.stdout.trim(), "would release 2 partitions: 0-1");
    assert!(
        dry.stderr.contains("dry run: would release ownership"),
        "{}",
        dry.stderr
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
    assert!(
        usage.stderr.contains("--partition") && usage.stderr.contains("--all"),
        "the message names what is missing: {}",
        usage.stderr
    );
}

#[tokio::test]
async fn many_partitions_are_summarised_in_numeric_order_and_detailed_with_verbose() {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    let claims: Vec<Ownership> = (0..24)
        .map(|p| Ownership::new((NS, EH, CG), p.to_string(), "consumer-a"))
        .collect();
    assert_eq!(store.claim_ownership(&claims).await.unwrap().len(), 24);
    let scope = scope(&container);
    let summary = run(&args("release", &scope, &["--all", "--dry-run"]));
    assert_eq!(summary.code, 0, "{}", summary.stderr);
    assert_eq!(summary.stdout.trim(), "would release 24 partitions: 0-23");
    let detail = run(&args("release", &scope, &["--all", "--dry-run", "-v"]));
    let lines: Vec<&str> = detail.stdout.lines().collect();
    assert_eq!(lines.len(), 25, "{}", detail.stdout);
    assert_eq!(lines[2], "would release partition 2");
    assert_eq!(lines[10], "would release partition 10", "numeric order");
    // Piped: no progress bar, nothing but the announcement on stderr.
    let released = run(&args("release", &scope, &["--all"]));
    assert_eq!(released.stdout.trim(), "released 24 partitions: 0-23");
    assert_eq!(released.stderr.lines().count(), 1, "{}", released.stderr);
}

#[tokio::test]
async fn a_closed_pipe_ends_quietly() {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    // Far more than a pipe's buffer of JSON.
    common::put_many(
        &store,
        "cli.servicebus.windows.net/telemetry/$default/checkpoint/",
        2000,
    )
    .await;
    let scope = scope(&container);
    // `eh-checkpoints list … | head -3`
    let mut child = Command::new(env!("CARGO_BIN_EXE_eh-checkpoints"))
        .args(args("list", &scope, &["--output", "json"]))
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            common::connection_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A file that cannot be written is named.
    let unwritable = run(&args(
        "export",
        &scope,
        &["--file", "/nonexistent/dir/out.jsonl"],
    ));
    assert_eq!(unwritable.code, 2, "{}", unwritable.stderr);
    assert!(
        unwritable.stderr.contains("/nonexistent/dir/out.jsonl"),
        "{}",
        unwritable.stderr
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

    // A second run of a finished migrate writes nothing, and says so.
    let again = run(&args("migrate", &scope, &["--to-naming", "verbatim"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to write"),
        "{}",
        again.stdout
    );
    // Once the consumers moved on in the new layout, a run would take them back: refused.
    verbatim
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "2",
            Some("900".into()),
            Some(9),
        ))
        .await
        .unwrap();
    let rewind = run(&args("migrate", &scope, &["--to-naming", "verbatim"]));
    assert_eq!(rewind.code, 2, "{}", rewind.stderr);
    assert!(
        rewind.stderr.contains(
            "partition 2: the destination is at sequence number 9 (offset 900), the source at sequence number 2 (offset 200); copying would move it back"
        ),
        "{}",
        rewind.stderr
    );
    assert_eq!(
        positions(&verbatim, CG).await["2"],
        (Some("900".into()), Some(9))
    );
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
        .args(["list", "-vv"])
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
    assert!(stderr.lines().count() > 1, "-vv logs the requests");
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

#[tokio::test]
async fn copies_never_rewind_a_live_fleet_or_themselves() {
    let (container, store) = seeded().await;
    let scope = scope(&container);

    // Onto its own records: refused.
    let onto_itself = run(&args("copy", &scope, &[]));
    assert_eq!(onto_itself.code, 2, "{}", onto_itself.stderr);
    assert!(
        onto_itself.stderr.contains("own records"),
        "{}",
        onto_itself.stderr
    );

    // Into a group whose consumers are live (claims on 0 and 1, renewed just now): refused,
    // naming each owner; nothing written.
    let into_live = run(&args(
        "copy",
        &scope,
        &["--to-namespace", "other.servicebus.windows.net"],
    ));
    assert_eq!(into_live.code, 0, "an empty group: {}", into_live.stderr);
    // The copy's source moves on (partitions 0 and 1 further along there): a copy back would
    // write over the live owners' checkpoints.
    let other = Scope::new("other.servicebus.windows.net", EH, CG);
    for (p, seq) in [("0", 10), ("1", 11)] {
        store
            .update_checkpoint(&other.checkpoint(p, Some((seq * 100).to_string()), Some(seq)))
            .await
            .unwrap();
    }
    let seeded_positions = positions(&store, CG).await;
    let source_group = run(&args(
        "copy",
        &[
            "--container".to_owned(),
            container.clone(),
            "--namespace".to_owned(),
            "other.servicebus.windows.net".to_owned(),
            "--eventhub".to_owned(),
            EH.to_owned(),
        ],
        &["--to-namespace", NS],
    ));
    assert_eq!(source_group.code, 2, "{}", source_group.stderr);
    assert!(
        source_group
            .stderr
            .contains("partition 0: owned by consumer-a")
            && source_group
                .stderr
                .contains("partition 1: owned by consumer-b"),
        "{}",
        source_group.stderr
    );
    assert_eq!(
        positions(&store, CG).await,
        seeded_positions,
        "nothing written"
    );
    // ... unless forced, which says what it overrode, and writes.
    let forced = run(&args(
        "copy",
        &[
            "--container".to_owned(),
            container.clone(),
            "--namespace".to_owned(),
            "other.servicebus.windows.net".to_owned(),
            "--eventhub".to_owned(),
            EH.to_owned(),
        ],
        &["--to-namespace", NS, "--force"],
    ));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        forced
            .stdout
            .contains("forced: partition 0: owned by consumer-a"),
        "{}",
        forced.stdout
    );
    let mut moved = seeded_positions.clone();
    moved.insert("0".into(), (Some("1000".into()), Some(10)));
    moved.insert("1".into(), (Some("1100".into()), Some(11)));
    assert_eq!(positions(&store, CG).await, moved, "{}", forced.stdout);

    // Import: a destination further along is never moved back.
    store
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, "replay"),
            "1",
            Some("5000".into()),
            Some(50),
        ))
        .await
        .unwrap();
    let exported = run(&args("export", &scope, &[]));
    let into_replay = args("import", &scope, &["--consumer-group", "replay"]);
    let refused = run_with_input(&into_replay, Some(&exported.stdout));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("partition 1: the destination is at sequence number 50 (offset 5000), the source at sequence number 11 (offset 1100)"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        positions(&store, "replay").await,
        BTreeMap::from([("1".to_owned(), (Some("5000".to_owned()), Some(50)))]),
        "nothing written"
    );
}

#[tokio::test]
async fn import_checks_its_whole_input_before_it_creates_or_writes_anything() {
    let container = common::unique_container();
    let scope = scope(&container);
    let store = common::store_on(&container, None);
    let lines = [
        r#"{"fully_qualified_namespace":"x","eventhub_name":"y","consumer_group":"z","partition_id":"0","offset":"1","sequence_number":1}"#,
        r#"{"fully_qualified_namespace":"x","eventhub_name":"y","consumer_group":"z","partition_id":"1","offset":"2","sequence_number":2}"#,
    ];
    for (bad, expected) in [
        (
            r#"{"fully_qualified_namespace":"x","eventhub_name":"y","consumer_group":"z","partition_id":"2","offset":null,"sequence_number":-4}"#,
            "line 3: partition 2 has a negative sequence number (-4)",
        ),
        (
            r#"{"fully_qualified_namespace":"x","eventhub_name":"y","consumer_group":"z","partition_id":"0","offset":"9","sequence_number":9}"#,
            "line 3: partition 0 is on line 1 too",
        ),
        (
            r#"{"fully_qualified_namespace":"x","eventhub_name":"y","consumer_group":"z","partition_id":"2","offset":null,"sequence_number":null}"#,
            "line 3: partition 2 has neither an offset nor a sequence number",
        ),
        ("not json", "line 3: not a checkpoint"),
    ] {
        let input = format!("{}\n{}\n{bad}\n", lines[0], lines[1]);
        let refused = run_with_input(&args("import", &scope, &[]), Some(&input));
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains(expected), "{}", refused.stderr);
        assert!(
            !store.container_exists().await.unwrap(),
            "the container was created before the input was checked"
        );
    }
    // A good input: the dry run says it would create the container, and creates nothing.
    let input = format!("{}\n{}\n", lines[0], lines[1]);
    let dry = run_with_input(&args("import", &scope, &["--dry-run"]), Some(&input));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stderr
            .contains("dry run: would import checkpoints in container")
            && dry.stderr.contains("would create container"),
        "{}",
        dry.stderr
    );
    assert!(!store.container_exists().await.unwrap());
    let done = run_with_input(&args("import", &scope, &[]), Some(&input));
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stderr.contains("created container"), "{}", done.stderr);
    assert_eq!(
        positions(&store, CG).await,
        BTreeMap::from([
            ("0".to_owned(), (Some("1".to_owned()), Some(1))),
            ("1".to_owned(), (Some("2".to_owned()), Some(2))),
        ])
    );
}

#[tokio::test]
async fn the_records_are_named_one_way_and_a_flag_beats_the_environment() {
    let (container, _store) = seeded().await;
    let scope = scope(&container);
    let conn = common::connection_string();
    let parsed: eventhub_checkpointstore::ConnectionString = conn.parse().unwrap();
    let account_url = parsed.blob_endpoint().unwrap().to_string();
    let sas = common::account_sas(&parsed);
    let dead = format!(
        "http://127.0.0.1:{}/devstoreaccount1",
        common::unused_port()
    );
    let dead_conn = conn.replace(
        &account_url.trim_end_matches('/').to_string(),
        dead.as_str(),
    );

    // Two at once is a usage error.
    let both = run(&args(
        "list",
        &scope,
        &["--connection-string", &conn, "--account-url", &account_url],
    ));
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(
        both.stderr
            .contains("--connection-string and --account-url"),
        "{}",
        both.stderr
    );
    let stray_sas = run(&args("list", &scope, &["--sas", &sas]));
    assert_eq!(stray_sas.code, 2, "{}", stray_sas.stderr);

    // The environment names a dead account; the flags name Azurite: the flags win.
    let flags_win = run_in(
        &[("AZURE_STORAGE_CONNECTION_STRING", Some(&dead_conn))],
        &args(
            "list",
            &scope,
            &[
                "--account-url",
                &account_url,
                "--sas",
                &sas,
                "--output",
                "json",
            ],
        ),
        None,
    );
    assert_eq!(flags_win.code, 0, "{}", flags_win.stderr);
    assert!(flags_win.stdout.contains("consumer-a"));
    // And the other way round: the environment names Azurite, the flag a dead account; the
    // command works on the flag's, and says so before it writes.
    let flag_is_used = run(&args(
        "set",
        &scope,
        &[
            "--account-url",
            &dead,
            "--sas",
            &sas,
            "--partition",
            "3",
            "--sequence-number",
            "30",
            "--timeout",
            "1s",
        ],
    ));
    assert_eq!(flag_is_used.code, 1, "{}", flag_is_used.stderr);
    assert!(
        flag_is_used.stderr.lines().next().unwrap().contains(&dead),
        "{}",
        flag_is_used.stderr
    );
    // The SAS in the environment goes with --account-url only.
    let env_sas = run_in(
        &[("AZURE_STORAGE_SAS", Some(&sas))],
        &args(
            "list",
            &scope,
            &["--account-url", &account_url, "--output", "json"],
        ),
        None,
    );
    assert_eq!(env_sas.code, 0, "{}", env_sas.stderr);
}

#[test]
fn help_explains_every_option_and_keeps_the_global_ones_apart() {
    let mut commands = vec![
        "list", "set", "release", "export", "import", "copy", "migrate",
    ];
    if cfg!(feature = "eventhubs") {
        commands.push("lag");
    }
    for command in commands {
        let help = run_in(&[], &[command, "--help"], None);
        assert_eq!(help.code, 0, "{}", help.stderr);
        let lines: Vec<&str> = help.stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let option = line.trim_start();
            let is_option = option.starts_with("--")
                || (option.starts_with('-') && option.get(2..5) == Some(", -"));
            if is_option && !line.contains("--help") {
                let text = lines.get(i + 1).map_or("", |l| l.trim());
                assert!(
                    !text.is_empty() && !text.starts_with('-'),
                    "{command}: {line:?} has no help text"
                );
            }
        }
        let options = help.stdout.find("Options:").unwrap();
        for heading in ["Store:", "Consumer group:", "Output:"] {
            let at = help.stdout.find(heading).unwrap_or_else(|| {
                panic!("{command} --help has no {heading} section: {}", help.stdout)
            });
            assert!(
                at > options,
                "{command}: {heading} comes after the command's own options"
            );
        }
    }
}

#[tokio::test]
async fn an_unreachable_store_says_what_it_waits_for_and_gives_up_on_time() {
    let dead = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1",
        common::unused_port()
    );
    let started = std::time::Instant::now();
    let waited = run_in(
        &[("AZURE_STORAGE_CONNECTION_STRING", Some(&dead))],
        &[
            "list",
            "--container",
            "gone",
            "--namespace",
            NS,
            "--eventhub",
            EH,
            "--timeout",
            "5s",
        ],
        None,
    );
    // A hang guard, far above the bound: the bound itself is the store's (its tests check it).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(waited.code, 1, "{}", waited.stderr);
    assert!(
        waited
            .stderr
            .contains("still waiting for the container http://127.0.0.1")
            && waited.stderr.contains("gives up after 5s (--timeout)"),
        "{}",
        waited.stderr
    );
    assert!(
        waited.stderr.contains("Connection refused"),
        "{}",
        waited.stderr
    );
}

/// `lag` against the local Event Hubs endpoint and Azurite, with a lag known by construction.
#[cfg(feature = "eventhubs")]
mod lag {
    use super::*;
    use eventhub_checkpointstore_testkit::eventhubs::{self, append, create_hub, HubSpec};
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    use time::OffsetDateTime;

    /// The local endpoint takes any token; the connection string is what a user of the emulator
    /// passes, the endpoint flag where the endpoint listens.
    const EVENTHUBS: &str =
        "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true";

    fn lag_args<'a>(
        container: &'a str,
        hub: &'a str,
        amqp: &'a str,
        more: &[&'a str],
    ) -> Vec<&'a str> {
        let mut all = vec![
            "lag",
            "--container",
            container,
            "--namespace",
            NS,
            "--eventhub",
            hub,
            "--eventhubs-connection-string",
            EVENTHUBS,
            "--eventhubs-endpoint",
            amqp,
        ];
        all.extend_from_slice(more);
        all
    }

    fn row<'a>(report: &'a Value, partition: &str) -> &'a Value {
        report["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .find(|r| r["partition_id"] == partition)
            .unwrap_or_else(|| panic!("no row for partition {partition}: {report}"))
    }

    /// A fresh container with checkpoints of `hub` at these (partition, sequence number)s, each
    /// offset 1,024 per event as the endpoint gives them.
    async fn checkpointed(
        hub: &str,
        at: &[(&str, i64)],
    ) -> (String, eventhub_checkpointstore::BlobCheckpointStore) {
        let container = common::fresh_container().await;
        let store = common::store_on(&container, None);
        let scope = Scope::new(NS, hub, CG);
        for (partition, sequence_number) in at {
            store
                .update_checkpoint(&scope.checkpoint(
                    *partition,
                    Some((sequence_number * 1024).to_string()),
                    Some(*sequence_number),
                ))
                .await
                .unwrap();
        }
        (container, store)
    }

    /// A hub of 4 partitions holding 10, 20, 0 and 5 events; checkpoints at 4 (partition 0) and
    /// 4 (partition 3, its last event), none for 1 and 2, and one for partition 9, which the hub
    /// does not have; partition 0 owned. Returns the container, the hub, and when the first
    /// events were appended (before, after): partition 0's 0..=5 among them, its 6..=9 3 s later.
    async fn lagging() -> (String, String, OffsetDateTime, OffsetDateTime) {
        let hub = create_hub(
            "lag",
            HubSpec {
                partitions: 4,
                preload: 0,
                rate: 0.0,
                total: None,
            },
        );
        let before = OffsetDateTime::now_utc();
        for (partition, count) in [("0", 6), ("1", 20), ("3", 5)] {
            append(&hub, partition, count);
        }
        let after = OffsetDateTime::now_utc();
        // Partition 0's last 4 events come 3 s later: its oldest unprocessed event (5) is then
        // 3 s older than its newest, so a lag measured from the newest shows.
        std::thread::sleep(Duration::from_secs(3));
        append(&hub, "0", 4);
        let (container, store) = checkpointed(&hub, &[("0", 4), ("3", 4), ("9", 7)]).await;
        let scope = Scope::new(NS, hub.as_str(), CG);
        let won = store
            .claim_ownership(&[scope.ownership("0", "consumer-a")])
            .await
            .unwrap();
        assert_eq!(won.len(), 1);
        (container, hub, before, after)
    }

    #[tokio::test]
    async fn lag_in_events_and_time_per_partition_with_a_total() {
        let (container, hub, before, after) = lagging().await;
        let amqp = eventhubs::amqp_url();
        let started = OffsetDateTime::now_utc();
        let json = run(&lag_args(&container, &hub, &amqp, &["--output", "json"]));
        let ended = OffsetDateTime::now_utc();
        assert_eq!(json.code, 0, "{}", json.stderr);
        let report: Value = serde_json::from_str(&json.stdout).expect(&json.stdout);

        let p0 = row(&report, "0");
        assert_eq!(p0["owner_id"], "consumer-a");
        assert_eq!(p0["claim_expired"], false);
        assert_eq!(p0["checkpoint_sequence_number"], 4);
        assert_eq!(p0["checkpoint_offset"], "4096");
        assert!(p0["checkpointed"].is_string(), "the checkpoint's age: {p0}");
        assert_eq!(p0["last_enqueued_sequence_number"], 9);
        assert!(p0["last_enqueued_time"].is_string(), "{p0}");
        assert_eq!(p0["lag_events"], 5);
        // The oldest unprocessed event (5) was enqueued between `before` and `after`, 3 s before
        // the newest; the lag is measured between `started` and `ended`. Whole-second clocks: a
        // second either side, and still the low bound is above a lag from the newest event.
        let waited = p0["lag_seconds"].as_f64().expect("a time lag");
        let low = (started - after).as_seconds_f64() - 1.5;
        let high = (ended - before).as_seconds_f64() + 1.5;
        assert!(
            low >= 1.0,
            "the set-up leaves the oldest event 3 s behind: {low}"
        );
        assert!(
            low <= waited && waited <= high,
            "{waited}s not in [{low}, {high}]"
        );

        let p1 = row(&report, "1");
        assert_eq!(p1["lag_events"], 20, "no checkpoint: from the start");
        assert!(
            p1["note"].as_str().unwrap().contains("no checkpoint"),
            "{p1}"
        );
        assert!(p1["lag_seconds"].as_f64().is_some(), "{p1}");
        assert_eq!(p1["owner_id"], Value::Null);

        let p2 = row(&report, "2");
        assert_eq!(p2["lag_events"], 0, "an empty partition");
        assert_eq!(p2["last_enqueued_sequence_number"], Value::Null);
        assert_eq!(p2["lag_seconds"], 0.0);

        let p3 = row(&report, "3");
        assert_eq!(p3["lag_events"], 0, "checkpointed at its last event");
        assert_eq!(p3["lag_seconds"], 0.0);

        let p9 = row(&report, "9");
        assert!(
            p9["note"].as_str().unwrap().contains("no such partition"),
            "{p9}"
        );
        assert_eq!(p9["lag_events"], Value::Null);

        assert_eq!(report["lag_events"], 25);
        assert_eq!(report["eventhub"], hub.as_str());
        assert!(report["max_lag_seconds"].as_f64().unwrap() >= waited);

        let table = run(&lag_args(&container, &hub, &amqp, &["--output", "table"]));
        assert_eq!(table.code, 0, "{}", table.stderr);
        for expected in [
            "PARTITION",
            "LAG TIME",
            "consumer-a",
            "partition 9: the event hub has no such partition",
            "total lag: 25 events over 5 partitions",
        ] {
            assert!(
                table.stdout.contains(expected),
                "no {expected:?} in:\n{}",
                table.stdout
            );
        }
    }

    /// Retention took events past a checkpoint, and a checkpoint lies past its partition's
    /// end (a recreated hub): each named, with the lag a consumer would really have.
    #[tokio::test]
    async fn expired_events_and_a_checkpoint_past_the_end_are_named() {
        let hub = create_hub(
            "lagexp",
            HubSpec {
                partitions: 2,
                preload: 30,
                rate: 0.0,
                total: None,
            },
        );
        assert_eq!(eventhubs::expire(&hub, "0", 10), 10);
        let (container, _) = checkpointed(&hub, &[("0", 4), ("1", 500)]).await;
        let amqp = eventhubs::amqp_url();
        let json = run(&lag_args(&container, &hub, &amqp, &["--output", "json"]));
        assert_eq!(json.code, 0, "{}", json.stderr);
        let report: Value = serde_json::from_str(&json.stdout).expect(&json.stdout);
        let p0 = row(&report, "0");
        assert_eq!(
            p0["note"], "events 5-9 after the checkpoint expired unprocessed",
            "{p0}"
        );
        assert_eq!(p0["lag_events"], 20, "from the first retained event: {p0}");
        let p1 = row(&report, "1");
        assert_eq!(
            p1["note"], "the checkpoint (500) is past the partition's last event (29)",
            "{p1}"
        );
        assert_eq!(p1["lag_events"], 0, "{p1}");
    }

    #[tokio::test]
    async fn watch_measures_again_until_interrupted() {
        let (container, hub, _, _) = lagging().await;
        let amqp = eventhubs::amqp_url();
        let mut child = Command::new(env!("CARGO_BIN_EXE_eh-checkpoints"))
            .args(lag_args(
                &container,
                &hub,
                &amqp,
                &["--output", "json", "--watch", "1s"],
            ))
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                common::connection_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let total = |line: String| -> i64 {
            let report: Value = serde_json::from_str(&line).expect(&line);
            report["lag_events"].as_i64().expect("a total")
        };
        assert_eq!(
            total(lines.next().expect("a first measurement").unwrap()),
            25
        );
        append(&hub, "1", 3);
        // Measurements go on; one of them sees the new events (a hang guard, not a bound).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let line = lines.next().expect("measurements go on").unwrap();
            if total(line) == 28 {
                break;
            }
            assert!(Instant::now() < deadline, "the new events never showed");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn bad_input_and_an_unreachable_hub_fail_with_their_exit_codes() {
        let container = common::fresh_container().await;
        let amqp = eventhubs::amqp_url();
        let hub = "any";
        let zero = run(&lag_args(&container, hub, &amqp, &["--watch", "0s"]));
        assert_eq!(zero.code, 2, "{}", zero.stderr);
        assert!(zero.stderr.contains("at least 1s"), "{}", zero.stderr);

        // `lag` with an Event Hubs connection string of its own, refused before any request.
        let with_connection_string = |connection_string: &str| {
            run(&[
                "lag",
                "--container",
                &container,
                "--namespace",
                NS,
                "--eventhub",
                hub,
                "--eventhubs-connection-string",
                connection_string,
            ])
        };
        let misspelled = with_connection_string(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccesKey=hunter2",
        );
        assert_eq!(misspelled.code, 2, "{}", misspelled.stderr);
        assert!(
            misspelled.stderr.contains("unknown key `SharedAccesKey`"),
            "{}",
            misspelled.stderr
        );
        assert!(
            !misspelled.stderr.contains("hunter2"),
            "{}",
            misspelled.stderr
        );

        let other_hub = with_connection_string(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;EntityPath=other",
        );
        assert_eq!(other_hub.code, 2, "{}", other_hub.stderr);
        assert!(
            other_hub.stderr.contains("for event hub other"),
            "{}",
            other_hub.stderr
        );

        let dead = format!("amqp://127.0.0.1:{}", common::unused_port());
        let started = Instant::now();
        let unreachable = run(&lag_args(&container, hub, &dead, &["--timeout", "5s"]));
        assert!(started.elapsed() < Duration::from_secs(120), "a hang guard");
        assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
        assert!(
            unreachable
                .stderr
                .contains("Event Hubs namespace localhost"),
            "{}",
            unreachable.stderr
        );

        let unknown = run(&lag_args(&container, "no-such-hub", &amqp, &[]));
        assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    }
}
