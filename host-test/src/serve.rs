//! A small static file server for the rule playground, on the loopback interface only.
//!
//! The playground needs an HTTP origin (browsers refuse to load WebAssembly and module workers
//! from `file://`) and nothing else: every evaluation runs in the page. This server answers
//! `GET` and `HEAD` for files under one directory with their content type, and sends a
//! restrictive Content-Security-Policy with every response so that nothing from elsewhere can
//! load and no inline script can run. It is a development tool of the harness, not part of the
//! shipped `vmext-detect`, and it is held to what a browser and a hostile local process can do:
//!
//! * **Files by capability**: the root is opened once as a `cap_std::fs::Dir`, and every
//!   request is opened through it, so no path (`..`, an absolute path, a symlink to a file or
//!   a directory outside the root) can reach outside it. Symlinks that stay inside are served;
//!   only regular files are (a FIFO would hold a worker until something wrote to it).
//! * **Bounded work per peer**: the request head is read into at most [`MAX_HEAD_BYTES`] (more
//!   is answered 431), with a deadline for the whole head (408), and one request per
//!   connection; a response must be written within a deadline, however slowly the peer
//!   reads. A fixed pool of workers serves connections from a bounded queue; a connection
//!   that finds the queue full is answered 503 at once and closed, so idle connections cannot
//!   exhaust threads or descriptors.
//! * **The `Host` header must name this server** (`127.0.0.1:PORT` or `localhost:PORT`), else
//!   421: a web page that rebinds its own DNS name to 127.0.0.1 cannot read the directory.
//! * `HEAD` gets the `Content-Length` a `GET` would; other methods get 405 with `Allow`.
//!
//! Request heads are parsed by `httparse` (the parser hyper uses). The serving loop is written
//! here because the small servers on crates.io did not bound it: `tiny_http` 0.12 starts a
//! thread per connection when its pool is busy and sets no read timeout.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;

/// The most bytes of request head (request line and headers) read from a peer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The most headers a request may have.
const MAX_HEADERS: usize = 64;

/// How the server bounds its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Time allowed for a peer to send its whole request head.
    pub head_deadline: Duration,
    /// Time allowed for the whole response to be written: a peer that reads slowly holds a
    /// worker for no longer than this.
    pub response_deadline: Duration,
    /// Connections served at once.
    pub workers: usize,
    /// Connections accepted and waiting for a worker; beyond this, 503.
    pub queue: usize,
}

impl Default for ServeOptions {
    /// 5 s for a request head, 30 s for a response, 8 workers, 32 waiting: far more than one
    /// browser tab needs.
    fn default() -> Self {
        ServeOptions {
            head_deadline: Duration::from_secs(5),
            response_deadline: Duration::from_secs(30),
            workers: 8,
            queue: 32,
        }
    }
}

/// The policy sent with every response: only this origin's scripts, styles, workers and
/// WebAssembly; no inline code, no frames, no forms, no other hosts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
worker-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Maps a request target to a path relative to the root, refusing anything but plain names.
/// The root is `index.html`; a query or fragment is ignored. Names are taken literally
/// (no percent-decoding: the playground's file names need none).
fn relative_path(target: &str) -> Option<&str> {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let relative = path.strip_prefix('/')?;
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let plain = !relative.contains(['\\', '\0', '%'])
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    plain.then_some(relative)
}

/// An answer without a file body.
struct Status {
    line: &'static str,
    body: &'static [u8],
    extra: &'static str,
}

const BAD_REQUEST: Status = Status {
    line: "400 Bad Request",
    body: b"bad request\n",
    extra: "",
};
const NOT_FOUND: Status = Status {
    line: "404 Not Found",
    body: b"not found\n",
    extra: "",
};
const NOT_ALLOWED: Status = Status {
    line: "405 Method Not Allowed",
    body: b"GET and HEAD only\n",
    extra: "Allow: GET, HEAD\r\n",
};
const TIMEOUT: Status = Status {
    line: "408 Request Timeout",
    body: b"request head not received in time\n",
    extra: "",
};
const MISDIRECTED: Status = Status {
    line: "421 Misdirected Request",
    body: b"this server answers only to its own address\n",
    extra: "",
};
const TOO_LARGE: Status = Status {
    line: "431 Request Header Fields Too Large",
    body: b"request head too large\n",
    extra: "",
};
const BUSY: Status = Status {
    line: "503 Service Unavailable",
    body: b"too many connections\n",
    extra: "Retry-After: 1\r\n",
};

fn head(
    stream: &mut TcpStream,
    line: &str,
    kind: &str,
    length: u64,
    extra: &str,
) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {line}\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n{extra}\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
}

fn answer(stream: &mut TcpStream, status: &Status, with_body: bool) -> io::Result<()> {
    head(
        stream,
        status.line,
        "text/plain; charset=utf-8",
        status.body.len() as u64,
        status.extra,
    )?;
    if with_body {
        stream.write_all(status.body)?;
    }
    stream.flush()
}

/// Reads the request head within the deadline and the size bound.
fn read_head(stream: &mut TcpStream, deadline: Duration) -> Result<Vec<u8>, &'static Status> {
    let started = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.checked_sub(started.elapsed()).ok_or(&TIMEOUT)?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|_| &TIMEOUT)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(&BAD_REQUEST),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(&TIMEOUT);
            }
            Err(_) => return Err(&BAD_REQUEST),
        };
        let room = MAX_HEAD_BYTES - buf.len();
        buf.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
        if memchr::memmem::find(&buf, b"\r\n\r\n").is_some() {
            return Ok(buf);
        }
        if n > room || buf.len() >= MAX_HEAD_BYTES {
            return Err(&TOO_LARGE);
        }
    }
}

/// After an early answer, with the peer possibly still sending: close our side, then read and
/// drop at most [`MAX_LINGER_BYTES`] for at most [`LINGER`], so that the peer receives the
/// answer instead of a reset, without the server taking more than that from it.
fn linger(stream: &mut TcpStream) {
    linger_for(stream, LINGER);
}

/// [`linger`] for at most `time`.
fn linger_for(stream: &mut TcpStream, time: Duration) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(time));
    let started = Instant::now();
    let mut drained = 0;
    let mut sink = [0u8; 8192];
    while drained < MAX_LINGER_BYTES && started.elapsed() < time {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// How long [`linger`] waits for a peer to stop sending.
const LINGER: Duration = Duration::from_millis(250);

/// How long a connection answered 503 lingers: on the accepting thread, so briefly (a flood of
/// connections slows accepting by this much each, and no more).
const BUSY_LINGER: Duration = Duration::from_millis(20);

/// The most bytes [`linger`] reads and drops.
const MAX_LINGER_BYTES: usize = 1 << 20;

/// Serves one request on `stream`, then closes it.
fn handle(
    root: &Dir,
    hosts: &[String],
    options: &ServeOptions,
    mut stream: TcpStream,
) -> io::Result<()> {
    stream.set_write_timeout(Some(options.response_deadline))?;
    let raw = match read_head(&mut stream, options.head_deadline) {
        Ok(raw) => raw,
        Err(status) => {
            answer(&mut stream, status, true)?;
            linger(&mut stream);
            return Ok(());
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return answer(&mut stream, &TOO_LARGE, true),
        _ => return answer(&mut stream, &BAD_REQUEST, true),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return answer(&mut stream, &BAD_REQUEST, true);
    };
    let is_head = method == "HEAD";
    let mut host = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (host.next(), host.next()) {
        (Some(h), None)
            if hosts
                .iter()
                .any(|ok| ok.as_bytes().eq_ignore_ascii_case(h.value)) => {}
        (None, _) | (Some(_), Some(_)) => return answer(&mut stream, &BAD_REQUEST, !is_head),
        (Some(_), None) => return answer(&mut stream, &MISDIRECTED, !is_head),
    }
    if method != "GET" && !is_head {
        return answer(&mut stream, &NOT_ALLOWED, true);
    }
    let Some(relative) = relative_path(target) else {
        return answer(&mut stream, &NOT_FOUND, !is_head);
    };
    // Opened through the root's capability: nothing outside it, symlinks included. Only
    // regular files: opening a FIFO would wait for a writer.
    if !root.metadata(relative).is_ok_and(|m| m.is_file()) {
        return answer(&mut stream, &NOT_FOUND, !is_head);
    }
    let file = match root.open(relative) {
        Ok(file) => file,
        Err(_) => return answer(&mut stream, &NOT_FOUND, !is_head),
    };
    let length = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return answer(&mut stream, &NOT_FOUND, !is_head),
    };
    head(
        &mut stream,
        "200 OK",
        content_type(Path::new(relative)),
        length,
        "",
    )?;
    if !is_head {
        send_within(
            &mut file.into_std().take(length),
            &mut stream,
            options.response_deadline,
        )?;
    }
    stream.flush()
}

/// Copies `from` to the peer, failing once `deadline` has passed since the first byte: each
/// write may take only the time that is left.
fn send_within(from: &mut impl Read, stream: &mut TcpStream, deadline: Duration) -> io::Result<()> {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let left = deadline
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "response deadline passed"))?;
        stream.set_write_timeout(Some(left))?;
        stream.write_all(chunk)?;
    }
}

/// Serves `root` on `127.0.0.1:port` until the process ends (port 0 picks a free port), with
/// the default bounds. Calls `ready` with the bound address before accepting connections.
pub fn serve(root: &Path, port: u16, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    serve_with(root, port, ServeOptions::default(), ready)
}

/// [`serve`] with explicit bounds.
pub fn serve_with(
    root: &Path,
    port: u16,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let dir = Arc::new(Dir::open_ambient_dir(root, cap_std::ambient_authority())?);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    let addr = listener.local_addr()?;
    let hosts = Arc::new(vec![
        format!("127.0.0.1:{}", addr.port()),
        format!("localhost:{}", addr.port()),
    ]);
    let (send, receive): (SyncSender<TcpStream>, Receiver<TcpStream>) = sync_channel(options.queue);
    let receive = Arc::new(Mutex::new(receive));
    for n in 0..options.workers.max(1) {
        let (dir, hosts, receive) = (Arc::clone(&dir), Arc::clone(&hosts), Arc::clone(&receive));
        std::thread::Builder::new()
            .name(format!("serve-{n}"))
            .spawn(move || {
                loop {
                    let next = match receive.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(stream) = next else { return };
                    // A peer that goes away or misbehaves costs its own connection only.
                    let _ = handle(&dir, &hosts, &options, stream);
                }
            })?;
    }
    ready(addr);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => match send.try_send(stream) {
                Ok(()) => {}
                Err(TrySendError::Full(mut stream)) => {
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    // Lingers briefly, so that closing with the request unread does not reset
                    // the connection before the peer has read the 503.
                    if answer(&mut stream, &BUSY, true).is_ok() {
                        linger_for(&mut stream, BUSY_LINGER);
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(io::Error::other("every worker of the server has stopped"));
                }
            },
            // Out of descriptors, or a peer that reset before accept: wait a moment, go on.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_are_looked_up() {
        assert_eq!(relative_path("/"), Some("index.html"));
        assert_eq!(relative_path("/pkg/a.js?v=1#x"), Some("pkg/a.js"));
        for bad in [
            "/../Cargo.toml",
            "/src/../x",
            "//etc/passwd",
            "/a\\b",
            "/%2e%2e/x",
            "x",
            "/./a",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
    }
}
