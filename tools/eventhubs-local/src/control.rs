//! The control plane: HTTP/1.1 on loopback, one request per connection, JSON in and out. What a
//! test needs to set up a hub, read what it holds and inject faults; nothing a consumer uses.

use crate::epoch;
use crate::faults::Faults;
use crate::hubs::{Hubs, Partition, Spec};
use serde_json::{json, Value as Json};
use std::{sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub async fn serve(listener: TcpListener, hubs: Arc<Hubs>, faults: Arc<Faults>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(handle(stream, hubs.clone(), faults.clone()));
    }
}

async fn handle(mut stream: TcpStream, hubs: Arc<Hubs>, faults: Arc<Faults>) {
    let Some((method, target, body)) = read(&mut stream).await else {
        return;
    };
    let (status, answer) = route(&hubs, &faults, &method, &target, &body);
    let text = answer.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn error(status: u16, message: impl Into<String>) -> (u16, Json) {
    (status, json!({ "error": message.into() }))
}

/// The value of `key` in a query string (`a=1&b=2`), if given.
fn param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// A partition fault: what `/hubs/{hub}/partitions/{id}/{fault}` does, or an error.
fn partition_fault(partition: &Partition, fault: &str, query: &str) -> (u16, Json) {
    let condition = param(query, "condition");
    match fault {
        "detach" => {
            let condition = condition.unwrap_or("amqp:link:detach-forced");
            let detached = epoch::detach_all(
                partition,
                param(query, "group"),
                condition,
                "The link was detached by the service (a fault). Retry.",
            );
            (200, json!({ "detached": detached }))
        }
        "refuse" => {
            let Some(ms) = param(query, "ms").and_then(|n| n.parse::<u64>().ok()) else {
                return error(400, "give ms=N: how long new receivers are refused");
            };
            let condition = condition.unwrap_or("com.microsoft:server-busy");
            partition.refuse_receivers(Duration::from_millis(ms), condition.to_owned());
            (200, json!({ "refused_ms": ms, "condition": condition }))
        }
        "pause" | "resume" => {
            partition.pause(fault == "pause");
            (200, json!({ "paused": fault == "pause" }))
        }
        "expire" => {
            let Some(before) = param(query, "before").and_then(|n| n.parse::<i64>().ok()) else {
                return error(400, "give before=N: the first sequence number kept");
            };
            partition.expire_before(before);
            (
                200,
                json!({ "begin_sequence_number": partition.begin_sequence_number() }),
            )
        }
        other => error(404, format!("no partition fault '{other}'")),
    }
}

fn route(hubs: &Hubs, faults: &Faults, method: &str, target: &str, body: &[u8]) -> (u16, Json) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let partition = |name: &str, id: &str| match hubs.get(name) {
        Some(hub) => match hub.partition(id) {
            Some(partition) => Ok((hub.clone(), partition.clone())),
            None => Err(error(404, format!("no partition '{id}' in '{name}'"))),
        },
        None => Err(error(404, format!("no event hub '{name}'"))),
    };
    match (method, parts.as_slice()) {
        ("GET", ["healthz"]) => (200, json!({ "ok": true })),
        ("POST", ["faults", "cut"]) => {
            let refuse_ms = param(query, "refuse_ms")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            let refuse = Duration::from_millis(refuse_ms);
            let condition = param(query, "condition");
            let cut = match param(query, "hub") {
                None => faults.cut_all(refuse, condition, None),
                // New connections cannot be told apart by hub: the hub's receivers are refused
                // instead, as a busy service refuses them.
                Some(name) => match hubs.get(name) {
                    Some(hub) => {
                        for partition in &hub.partitions {
                            partition
                                .refuse_receivers(refuse, "com.microsoft:server-busy".to_owned());
                        }
                        faults.cut_all(Duration::ZERO, condition, Some(name))
                    }
                    None => return error(404, format!("no event hub '{name}'")),
                },
            };
            (200, json!({ "cut": cut }))
        }
        ("GET", ["faults"]) => (200, faults.json()),
        ("PUT", ["hubs", name]) => {
            let spec: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let number = |key: &str| spec.get(key).and_then(Json::as_f64);
            let Some(partitions) = number("partitions") else {
                return error(400, "give \"partitions\"");
            };
            let spec = Spec {
                partitions: partitions as usize,
                preload: number("preload").unwrap_or(0.0) as usize,
                rate: number("rate").unwrap_or(0.0),
                total: number("total").map(|t| t as usize),
            };
            match hubs.create(name, &spec) {
                Ok(hub) => (201, hub.json()),
                Err(message) if message.ends_with("exists") => error(409, message),
                Err(message) => error(400, message),
            }
        }
        ("GET", ["hubs", name]) => match hubs.get(name) {
            Some(hub) => (200, hub.json()),
            None => error(404, format!("no event hub '{name}'")),
        },
        ("POST", ["hubs", name, "partitions", id, "events"]) => {
            let count = param(query, "count")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1);
            match partition(name, id) {
                Ok((hub, partition)) => (
                    200,
                    json!({ "last_sequence_number": partition.append(&hub.name, count) }),
                ),
                Err(answer) => answer,
            }
        }
        ("POST", ["hubs", name, "partitions", id, fault]) => match partition(name, id) {
            Ok((_, partition)) => partition_fault(&partition, fault, query),
            Err(answer) => answer,
        },
        _ => error(404, format!("nothing at {method} {path}")),
    }
}

/// The request's method, target and body (by its `Content-Length`), or `None` if the client went
/// away.
async fn read(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut request_line = head.lines().next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, target, body))
}
