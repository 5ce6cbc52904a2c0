//! The playground's development server against a real socket on 127.0.0.1, as a hostile local
//! process or a rebinding web page would face it. Every loop is bounded in count and time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use host_test::serve::{MAX_HEAD_BYTES, ServeOptions, serve_with};

/// Starts a server on a free port over a fresh folder with an index, a file, a symlink to a
/// file outside, a symlinked directory outside, and a symlink that stays inside.
fn start(label: &str, options: ServeOptions) -> (SocketAddr, vmext_test_support::TempDir) {
    let dir = vmext_test_support::TempDir::new(label);
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    std::fs::write(root.join("pkg/app.js"), "export const a = 1;\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("passwd")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::os::unix::fs::symlink("pkg/app.js", root.join("inside.js")).unwrap();
    // A FIFO: opening it would wait for a writer.
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    // Larger than the socket buffers: a peer that does not read keeps the server writing.
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len(64 << 20).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let served = root.clone();
    std::thread::spawn(move || {
        let _ = serve_with(&served, 0, options, |addr| tx.send(addr).unwrap());
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (addr, dir)
}

/// Sends `request` and reads the whole response (the server closes every connection).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, method: &str, path: &str) -> String {
    exchange(
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            addr.port()
        )
        .as_bytes(),
    )
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

#[test]
fn files_are_served_and_nothing_outside_the_root() {
    let (addr, _dir) = start("serve-paths", ServeOptions::default());
    let index = get(addr, "GET", "/");
    assert_eq!(status(&index), "200", "{index}");
    assert!(index.contains("Content-Security-Policy: default-src 'none'"));
    assert!(index.ends_with("<!doctype html><title>t</title>"));
    let js = get(addr, "GET", "/pkg/app.js?v=2");
    assert!(js.contains("Content-Type: text/javascript"), "{js}");
    // A symlink that stays inside the root is served.
    assert_eq!(status(&get(addr, "GET", "/inside.js")), "200");
    // A symlink to a file outside, a symlinked directory outside, `..`, absolute paths.
    for path in [
        "/passwd",
        "/escape/secret.txt",
        "/escape/",
        "/../outside/secret.txt",
        "/pkg/../../outside/secret.txt",
        "//etc/passwd",
        "/pkg",
        "/missing.html",
        "/%2e%2e/outside/secret.txt",
        "/fifo",
    ] {
        let response = get(addr, "GET", path);
        assert_eq!(status(&response), "404", "{path}: {response}");
        assert!(!response.contains("SECRET"), "{path}");
    }
}

#[test]
fn head_and_other_methods() {
    let (addr, _dir) = start("serve-methods", ServeOptions::default());
    let head = get(addr, "HEAD", "/index.html");
    assert_eq!(status(&head), "200", "{head}");
    let length = "<!doctype html><title>t</title>".len();
    assert!(
        head.contains(&format!("Content-Length: {length}\r\n")),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let response = get(addr, method, "/index.html");
        assert_eq!(status(&response), "405", "{method}: {response}");
        assert!(response.contains("Allow: GET, HEAD\r\n"), "{response}");
    }
}

#[test]
fn the_host_header_must_name_this_server() {
    let (addr, _dir) = start("serve-host", ServeOptions::default());
    let port = addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let r = exchange(
            addr,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), "200", "{host}");
    }
    // DNS rebinding: a page at attacker.example whose name now resolves to 127.0.0.1.
    for host in [
        format!("attacker.example:{port}"),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        let r = exchange(
            addr,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), "421", "{host}: {r}");
        assert!(!r.contains("<title>"), "{host}");
    }
    let missing = exchange(addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status(&missing), "400", "{missing}");
    let twice = exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: attacker.example\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status(&twice), "400", "{twice}");
}

#[test]
fn request_heads_are_bounded_in_size_and_time() {
    let options = ServeOptions {
        head_deadline: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let (addr, _dir) = start("serve-bounds", options);
    // A header line far over the bound (a writer that would send 256 MB): 431 after the
    // server read at most the bound and drained a little, never the whole line.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let line = vec![b'a'; 64 * 1024];
        let mut sent = writer
            .write_all(b"GET / HTTP/1.1\r\nX-Big: ")
            .map_or(0, |()| 0usize);
        while sent < 256 << 20 && writer.write_all(&line).is_ok() {
            sent += line.len();
        }
        sent
    });
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status(&out), "431", "{out}");
    drop(stream);
    let sent = sender.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the server took {sent} bytes of one request head (bound {MAX_HEAD_BYTES})"
    );
    // A peer that sends nothing is answered 408 after the deadline and closed.
    let started = Instant::now();
    let idle = exchange(addr, b"GET / HT");
    assert_eq!(status(&idle), "408", "{idle}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Garbage is a 400.
    assert_eq!(
        status(&exchange(addr, b"\x16\x03\x01\x00\xa5\r\n\r\n")),
        "400"
    );
}

#[test]
fn idle_connections_cannot_starve_new_requests() {
    let options = ServeOptions {
        head_deadline: Duration::from_secs(2),
        workers: 2,
        queue: 2,
        ..ServeOptions::default()
    };
    let (addr, _dir) = start("serve-idle", options);
    // Far more idle connections than workers and queue: the extra ones are answered 503 and
    // closed at once instead of holding a thread or descriptor each.
    let idle: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let busy = get(addr, "GET", "/");
    assert!(matches!(status(&busy), "503" | "200"), "{busy}");
    if status(&busy) == "503" {
        assert!(busy.contains("Retry-After: 1"), "{busy}");
    }
    // Once the idle peers' deadline has passed, requests are served again.
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(addr, "GET", "/");
        if status(&r) == "200" {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
}

/// A peer that asks for a large file and reads it slowly (each write of the server succeeds,
/// so no per-write timeout would fire) holds its worker only until the response deadline: with
/// one worker, the next request is served instead of waiting for the whole slow download.
#[test]
fn a_slow_reader_holds_a_worker_no_longer_than_the_response_deadline() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let options = ServeOptions {
        workers: 1,
        response_deadline: Duration::from_secs(2),
        ..ServeOptions::default()
    };
    let (addr, _dir) = start("serve-slow-reader", options);
    let mut slow = TcpStream::connect(addr).unwrap();
    write!(
        slow,
        "GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        addr.port()
    )
    .unwrap();
    // 16 KiB every 100 ms: 64 MiB would take over an hour.
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        while !stop.load(Ordering::Relaxed) {
            match slow.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // `get` gives up after 20 s: without the deadline, the one worker would still be busy.
    let next = get(addr, "GET", "/index.html");
    done.store(true, Ordering::Relaxed);
    assert_eq!(status(&next), "200", "{next}");
    let _ = reader.join();
}
