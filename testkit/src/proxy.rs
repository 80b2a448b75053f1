//! A fault-injecting HTTP/1.1 proxy: it sits between a store and Azurite and, for the requests a
//! rule matches, adds latency, answers 500/503 itself, resets the connection, drops the response
//! after Azurite applied the request, or never answers. Every request it sees is logged.
//!
//! It serves one request per client connection (each response goes out with `Connection: close`),
//! which keeps the framing trivial: the request is read by its `Content-Length`, Azurite's answer
//! to a `Connection: close` request is read to the end of its stream.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What to do to a matched request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Wait this long, then forward.
    Delay(Duration),
    /// Answer with this status (and `Retry-After`, in seconds) without forwarding.
    Status {
        status: u16,
        retry_after: Option<u32>,
    },
    /// Reset the connection (RST) without forwarding.
    Reset,
    /// Forward, let Azurite apply it, then reset the connection instead of answering.
    DropResponse,
    /// Hold the connection open and never answer (nothing is forwarded).
    Hang,
    /// Forward, then answer with Azurite's response less this header.
    StripHeader(&'static str),
}

/// Which requests a rule applies to.
#[derive(Clone, Debug, Default)]
pub struct Match {
    method: Option<&'static str>,
    /// Substrings the request target (path and query) must contain.
    target: Vec<String>,
    /// Substrings it must not contain.
    not_target: Vec<String>,
}

impl Match {
    pub fn any() -> Self {
        Self::default()
    }

    pub fn method(method: &'static str) -> Self {
        Self {
            method: Some(method),
            ..Self::default()
        }
    }

    /// The target must contain `part` too.
    pub fn target(mut self, part: impl Into<String>) -> Self {
        self.target.push(part.into());
        self
    }

    /// The target must not contain `part`.
    pub fn not_target(mut self, part: impl Into<String>) -> Self {
        self.not_target.push(part.into());
        self
    }

    pub fn matches(&self, method: &str, target: &str) -> bool {
        self.method.is_none_or(|m| m == method)
            && self.target.iter().all(|t| target.contains(t.as_str()))
            && !self.not_target.iter().any(|t| target.contains(t.as_str()))
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
#[allow(dead_code)] // `target` is shown in assertion messages
pub struct Seen {
    pub method: String,
    pub target: String,
    pub fault: Option<Fault>,
    /// Azurite's status, when the request was forwarded and answered.
    pub upstream_status: Option<u16>,
    pub at: Instant,
}

struct Rule {
    matches: Match,
    fault: Fault,
    remaining: usize,
}

#[derive(Default)]
struct State {
    /// How far the service's clock appears ahead of this host's (negative: behind).
    clock_shift: Mutex<Option<time::Duration>>,
    rules: Mutex<VecDeque<Rule>>,
    seen: Mutex<Vec<Seen>>,
    /// Requests read and not yet answered, and the most there ever were at once.
    in_flight: Mutex<(usize, usize)>,
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<State>);

impl InFlight {
    fn start(state: &Arc<State>) -> Self {
        let mut counts = state.in_flight.lock().unwrap();
        counts.0 += 1;
        counts.1 = counts.1.max(counts.0);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.lock().unwrap().0 -= 1;
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (host:port).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(serve(client, upstream, state.clone()));
                }
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to the next `times` requests that `matches` (rules are tried in the order
    /// they were added; a request gets at most one fault).
    pub fn inject(&self, matches: Match, fault: Fault, times: usize) {
        self.state.rules.lock().unwrap().push_back(Rule {
            matches,
            fault,
            remaining: times,
        });
    }

    /// From now on, the service's clock appears `by` ahead of this host's (negative: behind):
    /// every time it reports is shifted, and the times clients send back are shifted back
    /// (see [`crate::clock`]).
    pub fn shift_clock(&self, by: time::Duration) {
        *self.state.clock_shift.lock().unwrap() = Some(by);
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// The most requests that were in flight at once since the last call.
    pub fn take_max_in_flight(&self) -> usize {
        let mut counts = self.state.in_flight.lock().unwrap();
        let now = counts.0;
        std::mem::replace(&mut counts.1, now)
    }

    /// Everything seen since the last call.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.state.seen.lock().unwrap())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Some((mut head, body)) = read_request(&mut client).await else {
        return;
    };
    let clock_shift = *state.clock_shift.lock().unwrap();
    if let Some(by) = clock_shift {
        head = crate::clock::request_head(&head, by);
    }
    let _in_flight = InFlight::start(&state);
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        let rule = rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.matches.matches(&method, &target));
        rule.map(|r| {
            r.remaining -= 1;
            r.fault
        })
    };
    let index = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            method,
            target,
            fault,
            upstream_status: None,
            at: Instant::now(),
        });
        seen.len() - 1
    };

    match fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let retry_after = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 {status} Injected\r\nx-ms-error-code: InjectedFault\r\n{retry_after}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = client.write_all(response.as_bytes()).await;
            let _ = client.shutdown().await;
            return;
        }
        Some(Fault::Reset) => return reset(client),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropResponse) | Some(Fault::StripHeader(_)) | None => {}
    }

    let Some(mut response) = forward(upstream, &head, &body).await else {
        return reset(client);
    };
    if let Some(Fault::StripHeader(name)) = fault {
        response = without_header(&response, name);
    }
    if let Some(by) = clock_shift {
        response = crate::clock::response(&response, by);
    }
    state.seen.lock().unwrap()[index].upstream_status = status_of(&response);
    if fault == Some(Fault::DropResponse) {
        return reset(client);
    }
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}

/// Closes with RST: the client sees "connection reset", not a clean end of stream.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

/// The request head (without the blank line) and its body, or `None` if the client went away.
async fn read_request(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// Sends the request to Azurite on a connection of its own and returns the whole answer.
async fn forward(upstream: SocketAddr, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).await.ok()?;
    let head: String = head
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    server
        .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    server.write_all(body).await.ok()?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await.ok()?;
    (!response.is_empty()).then_some(response)
}

/// `response` with every `name` header line of its head removed.
fn without_header(response: &[u8], name: &str) -> Vec<u8> {
    let Some(head_end) = find(response, b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    out.extend_from_slice(&response[head_end..]);
    out
}

fn status_of(response: &[u8]) -> Option<u16> {
    std::str::from_utf8(response.get(9..12)?).ok()?.parse().ok()
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
