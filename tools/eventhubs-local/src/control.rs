//! The control plane: HTTP/1.1 on loopback, one request per connection, JSON in and out. What a
//! test needs to set up a hub and read what it holds; nothing a consumer uses.

use crate::faults::Faults;
use crate::hubs::{Hubs, Spec};
use serde_json::{json, Value as Json};
use std::sync::Arc;
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

fn route(hubs: &Hubs, faults: &Faults, method: &str, target: &str, body: &[u8]) -> (u16, Json) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["healthz"]) => (200, json!({ "ok": true })),
        ("POST", ["faults", "cut"]) => {
            let refuse_ms = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("refuse_ms="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            let cut = faults.cut_all(std::time::Duration::from_millis(refuse_ms));
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
            let count = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("count="))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1);
            match hubs.get(name) {
                Some(hub) => match hub.partition(id) {
                    Some(partition) => (
                        200,
                        json!({ "last_sequence_number": partition.append(&hub.name, count) }),
                    ),
                    None => error(404, format!("no partition '{id}' in '{name}'")),
                },
                None => error(404, format!("no event hub '{name}'")),
            }
        }
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
