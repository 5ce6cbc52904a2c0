//! Nothing lost, nothing hidden: the inputs real pipelines and Azure exports produce, through
//! `vmext-detect scan` with both engines. Every valid record is evaluated, every bad document
//! is reported with its file and line, the counts add up, and the exit status says what
//! happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use host_test::generate::{CorpusShape, CorpusSpec, generate};

/// Runs `vmext-detect scan` with `args` through one engine; returns (status, stdout, stderr).
fn scan(engine: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let component = vmext_test_support::build_artefact(vmext_test_support::Artefact::Component);
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmext-detect"));
    command
        .args(["scan", "--no-progress", "--engine", engine])
        .args(args)
        .env("VMEXT_COMPONENT", component);
    vmext_test_support::run_with_stdin(command, stdin)
}

/// Runs the same scan through both engines, checks that they agree on status and alerts
/// (stderr differs only in timings), and returns the component's result.
fn both(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let component = scan("component", args, stdin);
    let native = scan("native", args, stdin);
    assert_eq!(
        component.0, native.0,
        "status\n{}\n{}",
        component.2, native.2
    );
    assert_eq!(component.1, native.1, "alerts differ between the engines");
    assert_eq!(
        without_timing(&component.2),
        without_timing(&native.2),
        "reports differ between the engines"
    );
    component
}

/// Stderr without the summary's timing figures.
fn without_timing(err: &str) -> String {
    err.lines()
        .map(|l| l.split(" MB in ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = vmext_test_support::repo_root()
        .join("target/test-output/input")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A generated raw-export corpus (one record per line, as in Azure's `PT1H.json`) with many
/// alerting records.
fn corpus(records: u64, shape: CorpusShape) -> Vec<u8> {
    let mut out = Vec::new();
    generate(
        &CorpusSpec {
            records,
            shape,
            true_positive_rate: 0.2,
            near_miss_rate: 0.2,
            seed: 7,
        },
        &mut out,
    )
    .unwrap();
    out
}

/// The summary's value after `key ` (e.g. `invalid 1`).
fn count(err: &str, key: &str) -> u64 {
    let summary = err.lines().last().unwrap_or_default();
    let at = summary
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("no `{key}` in {summary}"));
    summary[at + key.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const ALERTS: i32 = 1;
const INVALID: i32 = 4;
const UNREADABLE: i32 = 8;

/// Case 1 and 8: a truncated line in a JSON Lines file named `.json` costs that line only;
/// the exit status shows both the alerts and the invalid document.
#[test]
fn a_broken_line_in_a_json_lines_file_costs_only_itself() {
    let dir = scratch("broken-line");
    let clean = corpus(200, CorpusShape::Raw);
    let clean_path = dir.join("clean.ndjson");
    std::fs::write(&clean_path, &clean).unwrap();
    let (code, expected, err) = both(&[clean_path.to_str().unwrap()], b"");
    assert_eq!(code, ALERTS, "{err}");
    assert!(expected.lines().count() >= 20, "{err}");

    let lines: Vec<&[u8]> = clean.split(|&b| b == b'\n').collect();
    let mut broken = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 100 {
            broken.extend_from_slice(b"{\"a\":\"x\n");
        }
        broken.extend_from_slice(line);
        broken.push(b'\n');
    }
    let path = dir.join("PT1H.json");
    std::fs::write(&path, &broken).unwrap();
    let (code, out, err) = both(&[path.to_str().unwrap()], b"");
    assert_eq!(
        out, expected,
        "every record after the broken line is evaluated"
    );
    assert_eq!(code, ALERTS | INVALID, "{err}");
    assert!(err.contains("PT1H.json:101: invalid JSON"), "{err}");
    assert_eq!(count(&err, "documents"), 201, "{err}");
    assert_eq!(count(&err, "invalid"), 1, "{err}");
    // The same bytes on stdin.
    let (code, out, err) = both(&[], &broken);
    assert_eq!((code, out), (ALERTS | INVALID, expected), "{err}");
    assert!(err.contains("<stdin>:101: invalid JSON"), "{err}");
}

/// Case 2: bytes that are not JSON text are reported as such, never as valid records; gzip is
/// read as the text inside it.
#[test]
fn bytes_that_are_not_json_are_never_valid_and_gzip_is_read() {
    let dir = scratch("not-json");
    let clean = corpus(100, CorpusShape::Ecs);
    let plain = dir.join("plain.ndjson");
    std::fs::write(&plain, &clean).unwrap();
    let (code, expected, _) = both(&[plain.to_str().unwrap()], b"");
    assert_eq!(code, ALERTS);

    let gz = dir.join("export.json.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&clean).unwrap();
    let compressed = encoder.finish().unwrap();
    std::fs::write(&gz, &compressed).unwrap();
    let (code, out, err) = both(&[gz.to_str().unwrap()], b"");
    assert_eq!((code, &out), (ALERTS, &expected), "{err}");
    let (code, out, _) = both(&[], &compressed);
    assert_eq!((code, out), (ALERTS, expected), "gzip on stdin");

    let text = String::from_utf8(clean).unwrap();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let path = dir.join("utf16.json");
    std::fs::write(&path, &utf16).unwrap();
    let (code, out, err) = both(&[path.to_str().unwrap()], b"");
    assert_eq!((code, out.as_str()), (UNREADABLE, ""), "{err}");
    assert!(
        err.contains("utf16.json: skipped: not JSON text: UTF-16"),
        "{err}"
    );

    // Random bytes: with NUL bytes, refused whole; without, every line is an invalid document.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut random = |n: usize, avoid: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = (state >> 24) as u8;
            if !avoid.contains(&b) {
                out.push(b);
            }
        }
        out
    };
    let binary = random(1 << 20, &[]);
    let (code, _, err) = both(&[], &binary);
    assert_eq!(code, UNREADABLE, "{err}");
    assert!(err.contains("not JSON text: binary data"), "{err}");
    let noise = random(1 << 20, &[0]);
    let (code, _, err) = both(&[], &noise);
    assert_eq!(code, INVALID, "{err}");
    let lines = noise
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(|b| b" \t\r".contains(b)))
        .count() as u64;
    assert!(count(&err, "invalid") >= lines, "{err}");
    assert_eq!(count(&err, "documents"), count(&err, "invalid"), "{err}");
}

/// Cases 4 and 5: a document over the size cap is reported with its line and skipped, the
/// same way by both engines, and the scan goes on.
#[test]
fn documents_over_the_cap_are_skipped_alike_by_both_engines() {
    let dir = scratch("cap");
    let clean = corpus(40, CorpusShape::Ecs);
    let (_, expected, _) = both(&["--max-document-bytes", "65536"], &clean);
    let padding = "A".repeat(300_000);
    let huge = format!(
        "{{\"operation\":\"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE\",\"pad\":\"{padding}\"}}\n"
    );
    let pretty = format!("{{\n\"records\": [\n{{\"pad\": \"{padding}\"}}\n]\n}}\n");
    let mut input = huge.into_bytes();
    input.extend_from_slice(&clean);
    input.extend_from_slice(pretty.as_bytes());
    let path = dir.join("mixed.json");
    std::fs::write(&path, &input).unwrap();
    let (code, out, err) = both(
        &["--max-document-bytes", "65536", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(out, expected);
    assert_eq!(code, ALERTS | INVALID, "{err}");
    assert!(
        err.contains("mixed.json:1: document of 300") && err.contains("over the size cap"),
        "{err}"
    );
    assert!(err.contains("mixed.json:42: document of"), "{err}");
    assert!(err.contains("invalid 2 (2 over the size cap)"), "{err}");
    let (code, _, err) = both(&["--max-document-bytes", "0"], b"");
    assert_eq!(code, 2, "{err}");
}

/// Case 6: byte order marks at the start of a file or of a line are skipped.
#[test]
fn byte_order_marks_are_skipped() {
    let dir = scratch("bom");
    let envelope = std::fs::read(
        vmext_test_support::repo_root().join("fixtures/raw/event-hub-envelope-mixed.json"),
    )
    .unwrap();
    let (_, expected, _) = both(&[], &envelope);
    assert!(!expected.is_empty());
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(&envelope);
    let path = dir.join("bom.json");
    std::fs::write(&path, &with_bom).unwrap();
    let (code, out, err) = both(&[path.to_str().unwrap()], b"");
    assert_eq!((code, out), (ALERTS, expected.clone()), "{err}");
    let mut twice = with_bom.clone();
    twice.push(b'\n');
    twice.extend_from_slice(&with_bom);
    let (code, out, err) = both(&[], &twice);
    assert_eq!((code, out), (ALERTS, expected.repeat(2)), "{err}");
}

/// Case 7: a file that cannot be opened is reported; the scan goes on, prints its summary,
/// and the exit status says so.
#[test]
fn a_missing_file_does_not_stop_the_scan() {
    let dir = scratch("missing");
    let clean = corpus(50, CorpusShape::Ecs);
    let a = dir.join("a.ndjson");
    let b = dir.join("b.ndjson");
    std::fs::write(&a, &clean).unwrap();
    std::fs::write(&b, &clean).unwrap();
    let (_, expected, _) = both(&[a.to_str().unwrap()], b"");
    let missing = dir.join("missing.ndjson");
    let (code, out, err) = both(
        &[
            a.to_str().unwrap(),
            missing.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out, expected.repeat(2));
    assert_eq!(code, ALERTS | UNREADABLE, "{err}");
    assert!(err.contains("missing.ndjson: cannot open"), "{err}");
    assert!(err.contains("1 inputs could not be read"), "{err}");
    assert_eq!(count(&err, "documents"), 100, "{err}");
}

mod property {
    //! Any valid corpus with garbage between its documents, in any framing, gives exactly the
    //! clean corpus's alerts and one invalid document per piece of garbage.
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;
    use vmext_engine::Detector;
    use vmext_host::evaluator::NativeEvaluator;
    use vmext_host::input::DEFAULT_MAX_DOCUMENT_BYTES;
    use vmext_host::scan::{Input, Report, ScanOptions, Summary};

    /// Records of both shapes, a fifth of them alerting.
    fn pool() -> &'static Vec<String> {
        static POOL: OnceLock<Vec<String>> = OnceLock::new();
        POOL.get_or_init(|| {
            let mut text = corpus(60, CorpusShape::Ecs);
            text.extend(corpus(60, CorpusShape::Raw));
            String::from_utf8(text)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        })
    }

    /// One piece of garbage: never a valid object, never more than one document by the
    /// framing rule, never a line break.
    fn garbage() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // A record cut short (as by a crash or a full disk) inside a string. A cut anywhere
            // else can be the first line of a valid document spanning lines: cut after
            // `"durationMs":`, the record on the next line and a `}` after it close it.
            (0..pool().len(), 1usize..2000).prop_map(|(i, cut)| {
                let record = pool()[i].as_bytes();
                record[..cut_in_string(record, cut)].to_vec()
            }),
            // Bytes that cannot start a JSON value, then anything but a line break or NUL.
            (
                prop::sample::select(b"}]:,#<xyzAC\x80\xC3".to_vec()),
                prop::collection::vec(any::<u8>(), 0..60)
            )
                .prop_map(|(first, rest)| {
                    let mut g = vec![first];
                    g.extend(rest.into_iter().filter(|b| !matches!(b, b'\n' | b'\r' | 0)));
                    g
                }),
            // Valid JSON that is not a record.
            prop::sample::select(vec![&b"[1,2]"[..], b"\"text\"", b"42", b"null", b"[]"])
                .prop_map(<[u8]>::to_vec),
        ]
    }

    /// For each byte of a JSON text, whether the text is inside a string after it: true for an
    /// opening quote and the string's content, false for its closing quote and what lies
    /// between strings.
    fn inside_strings(text: &[u8]) -> Vec<bool> {
        let (mut in_string, mut escaped) = (false, false);
        text.iter()
            .map(|&b| {
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                } else if b == b'"' {
                    in_string = true;
                }
                in_string
            })
            .collect()
    }

    /// The longest prefix of `record`, at most `cut` bytes (at least two) and shorter than the
    /// record, that ends inside a string: no line after it can continue it, because a JSON
    /// string holds no line break.
    fn cut_in_string(record: &[u8], cut: usize) -> usize {
        let inside = inside_strings(record);
        (1..=cut.clamp(2, record.len() - 1))
            .rev()
            .find(|&len| inside.get(len - 1) == Some(&true))
            .expect("every record opens a string in its first two bytes")
    }

    /// A record printed over several lines: a line break after each `{`, `[` and `,` outside
    /// strings.
    fn pretty(record: &str) -> String {
        let mut out = Vec::new();
        for (&b, inside) in record
            .as_bytes()
            .iter()
            .zip(inside_strings(record.as_bytes()))
        {
            out.push(b);
            if !inside && matches!(b, b'{' | b'[' | b',') {
                out.extend_from_slice(b"\n  ");
            }
        }
        // Line breaks go in after ASCII bytes only, so the text stays UTF-8.
        String::from_utf8(out).unwrap()
    }

    fn run(name: &str, bytes: &[u8]) -> (Summary, String) {
        let dir = vmext_test_support::repo_root().join("target/test-output/input/property");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut evaluator = NativeEvaluator::new(Detector::seed());
        let (mut out, mut log) = (Vec::new(), Vec::new());
        let summary = vmext_host::scan::scan(
            &[Input::File(path)],
            &mut evaluator,
            ScanOptions {
                report: Report::Alerts,
                progress: false,
                max_document: DEFAULT_MAX_DOCUMENT_BYTES,
                piece_bytes: vmext_host::scan::PIECE_BYTES,
            },
            &mut out,
            &mut log,
        )
        .unwrap();
        (summary, String::from_utf8(out).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn garbage_between_documents_costs_only_itself(
            picks in prop::collection::vec(0..120usize, 1..25),
            inserts in prop::collection::vec((0..25usize, garbage()), 0..6),
            framing in 0..5usize,
        ) {
            let records: Vec<&str> = picks.iter().map(|&i| pool()[i % pool().len()].as_str()).collect();
            let clean: String = records.iter().map(|r| format!("{r}\n")).collect();
            let (expected, expected_alerts) = run("clean.ndjson", clean.as_bytes());
            prop_assert_eq!(expected.invalid, 0);

            let mut pieces: Vec<Vec<u8>> = records
                .iter()
                .map(|r| if framing == 2 { pretty(r) } else { (*r).to_owned() }.into_bytes())
                .collect();
            // At most one piece of garbage per gap: two pieces side by side can make a valid
            // document together (`{` then `}` on the next line is a pretty-printed `{}`).
            let mut gaps: Vec<(usize, &Vec<u8>)> = Vec::new();
            for (at, g) in &inserts {
                let gap = at % (records.len() + 1);
                if gaps.iter().all(|(taken, _)| *taken != gap) {
                    gaps.push((gap, g));
                }
            }
            gaps.sort_by_key(|(gap, _)| std::cmp::Reverse(*gap));
            for (gap, g) in &gaps {
                pieces.insert(*gap, (*g).clone());
            }
            let newline: &[u8] = if framing == 3 { b"\r\n" } else { b"\n" };
            let mut bytes = if framing == 3 { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
            for piece in &pieces {
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(newline);
            }
            let name = match framing {
                0 => "corpus.ndjson",
                1 => "PT1H.json",
                2 => "pretty.json",
                3 => "crlf.log",
                _ => "corpus.ndjson.gz",
            };
            if framing == 4 {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&bytes).unwrap();
                bytes = gz.finish().unwrap();
            }
            let (got, alerts) = run(name, &bytes);
            prop_assert_eq!(alerts, expected_alerts);
            prop_assert_eq!(got.invalid, gaps.len() as u64);
            prop_assert_eq!(got.documents, (records.len() + gaps.len()) as u64);
            prop_assert_eq!(got.alerts, expected.alerts);
            prop_assert_eq!(got.unreadable, 0);
        }

        /// A file scanned in pieces on several threads gives what one thread gives: the same
        /// alerts in order, the same log (line numbers included) and the same summary, bytes
        /// read included, wherever the pieces fall: inside records, on pretty-printed
        /// documents (which then run on past a piece), on blank lines, `\r\n` ends, broken
        /// records and documents over the size cap.
        #[test]
        fn pieces_give_what_one_thread_gives(
            parts in prop::collection::vec((0..120usize, 0..8usize, garbage()), 1..40),
            piece in 1u64..3000,
            threads in 2usize..4,
            small_cap in any::<bool>(),
            crlf in any::<bool>(),
        ) {
            let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut bytes = Vec::new();
            for (i, kind, g) in &parts {
                let record = pool()[i % pool().len()].as_str();
                match kind {
                    0 => bytes.extend_from_slice(pretty(record).as_bytes()),
                    1 => bytes.extend_from_slice(g),
                    2 => {}
                    3 => bytes.extend_from_slice(format!("{record} {record}").as_bytes()),
                    _ => bytes.extend_from_slice(record.as_bytes()),
                }
                bytes.extend_from_slice(newline);
            }
            let dir = vmext_test_support::repo_root().join("target/test-output/input/pieces");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("pieces-{}.ndjson", std::process::id()));
            std::fs::write(&path, &bytes).unwrap();
            let options = ScanOptions {
                report: Report::Alerts,
                progress: false,
                max_document: if small_cap { 1500 } else { DEFAULT_MAX_DOCUMENT_BYTES },
                piece_bytes: piece,
            };
            let inputs = [Input::File(path.clone())];
            let (mut out, mut log) = (Vec::new(), Vec::new());
            let mut evaluator = NativeEvaluator::new(Detector::seed());
            let one = vmext_host::scan::scan(&inputs, &mut evaluator, options, &mut out, &mut log)
                .unwrap();
            let make = || -> Result<Box<dyn vmext_host::evaluator::Evaluator>, String> {
                Ok(Box::new(NativeEvaluator::new(Detector::seed())))
            };
            let (mut out_n, mut log_n) = (Vec::new(), Vec::new());
            let many = vmext_host::scan::scan_files(
                &inputs, threads, &make, options, &mut out_n, &mut log_n,
            )
            .unwrap();
            let _ = std::fs::remove_file(&path);
            prop_assert_eq!(String::from_utf8_lossy(&log_n), String::from_utf8_lossy(&log));
            prop_assert_eq!(String::from_utf8(out_n).unwrap(), String::from_utf8(out).unwrap());
            prop_assert_eq!(many, one);
        }
    }
}

/// A file large enough to be scanned in pieces (over 16 MiB) gives, through the binary and
/// both engines, on two threads what it gives on one: the same alerts in order, the same
/// error lines with the same line numbers, the same summary. Broken lines sit at both ends,
/// and a pretty-printed envelope in the middle runs on past the end of its piece.
#[test]
fn a_file_in_pieces_gives_what_one_thread_gives() {
    let dir = scratch("pieces");
    let ecs = corpus(4_000, CorpusShape::Ecs);
    let raw = corpus(4_000, CorpusShape::Raw);
    // A first line that is no document but closes (a file opening a pretty-printed document
    // is not split at all), then one that opens a document the next lines break.
    let mut text = b"not json\n{\"broken\":\n".to_vec();
    for (i, record) in ecs.split_inclusive(|&b| b == b'\n').cycle().enumerate() {
        if text.len() >= 7 << 20 {
            break;
        }
        text.extend_from_slice(record);
        if i % 1000 == 999 {
            text.extend_from_slice(b"not json\n");
        }
    }
    // Pretty-printed from before 8 MiB to after it (about 2 MB of members): the envelope's
    // lines run on past the first piece's end.
    text.extend_from_slice(b"{\n  \"records\": [\n");
    let members: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for (i, member) in members.iter().take(1_000).enumerate() {
        if i > 0 {
            text.extend_from_slice(b",\n");
        }
        text.extend_from_slice(member);
    }
    text.extend_from_slice(b"\n  ]\n}\n");
    let envelope_end = text.len();
    while text.len() < 20 << 20 {
        text.extend_from_slice(&raw);
        text.extend_from_slice(b"{\"cut\":\"\n");
    }
    let path = dir.join("big.ndjson");
    let envelope = text
        .windows(12)
        .position(|w| w == b"\"records\": [")
        .unwrap();
    assert!(
        envelope < 8 << 20 && envelope_end > 8 << 20,
        "{envelope}..{envelope_end}"
    );
    std::fs::write(&path, &text).unwrap();
    let path = path.display().to_string();
    for engine in ["native", "component"] {
        let one = scan(engine, &["-j", "1", &path], b"");
        let two = scan(engine, &["-j", "2", &path], b"");
        assert_eq!(one.0, ALERTS | INVALID, "{engine}: {}", one.2);
        assert_eq!(two.0, one.0, "{engine}: status");
        // Megabytes of alerts: compared without printing them.
        assert!(
            two.1 == one.1,
            "{engine}: the alerts differ ({} bytes on two threads, {} on one)",
            two.1.len(),
            one.1.len()
        );
        assert_eq!(
            without_timing(&two.2),
            without_timing(&one.2),
            "{engine}: log"
        );
        assert!(count(&one.2, "alerts") > 1000, "{engine}: {}", one.2);
    }
}

/// An envelope of the records of `corpus`, compact.
fn envelope_of(records: &[u8]) -> Vec<u8> {
    let mut out = b"{\"records\":[".to_vec();
    for (i, line) in records
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// Case 3: envelopes never lose records through the component because of their size: a large
/// envelope goes to the guest in pieces, so its memory cap and deadline bound a piece.
#[test]
fn large_envelopes_lose_no_record_through_the_component() {
    let dir = scratch("envelopes");
    // 20,000 alerting raw records (about 36 MB), all alerting.
    let mut spec = CorpusSpec {
        records: 20_000,
        shape: CorpusShape::Raw,
        true_positive_rate: 1.0,
        near_miss_rate: 0.0,
        seed: 11,
    };
    let mut alerting = Vec::new();
    generate(&spec, &mut alerting).unwrap();
    let path = dir.join("alerting.json");
    std::fs::write(&path, envelope_of(&alerting)).unwrap();
    let (code, out, err) = both(&[path.to_str().unwrap()], b"");
    assert_eq!(code, ALERTS, "{err}");
    assert_eq!(out.lines().count(), 20_000, "{err}");
    assert!(
        out.contains("\"envelope_index\":19999"),
        "indices run across the pieces"
    );

    // 100,000 records: small benign ones with a hundred alerting ones among them.
    spec.records = 100;
    let mut few = Vec::new();
    generate(&spec, &mut few).unwrap();
    let mut records = Vec::new();
    for (i, line) in few
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        for _ in 0..999 {
            records
                .extend_from_slice(b"{\"category\":\"Administrative\",\"operationName\":\"X\"}\n");
        }
        records.extend_from_slice(line);
        records.push(b'\n');
        assert!(i < 100);
    }
    let path = dir.join("hundred-thousand.json");
    std::fs::write(&path, envelope_of(&records)).unwrap();
    let (code, out, err) = both(&[path.to_str().unwrap()], b"");
    assert_eq!((code, out.lines().count()), (ALERTS, 100), "{err}");
    assert!(err.contains("holding 100000 records"), "{err}");

    // A million empty objects hiding one alert (3 MB that expands to a large tree).
    let mut amplified = b"{\"records\":[".to_vec();
    for _ in 0..1_000_000 {
        amplified.extend_from_slice(b"{},");
    }
    amplified.extend_from_slice(few.split(|&b| b == b'\n').next().unwrap());
    amplified.extend_from_slice(b"]}\n");
    let (code, out, err) = both(&[], &amplified);
    assert_eq!((code, out.lines().count()), (ALERTS, 1), "{err}");
}

/// Case 3, the deadline: with a 100,000-item exception list, a 60-record envelope is more than
/// one call's deadline; the component evaluates it again record by record and loses none.
#[test]
fn an_envelope_over_the_deadline_is_evaluated_record_by_record() {
    let dir = scratch("deadline");
    let mut items = String::from("[");
    for i in 0..100_000 {
        if i > 0 {
            items.push(',');
        }
        items.push_str(&format!(
            "{{\"item_id\":\"i{i}\",\"type\":\"simple\",\"entries\":[{{\"field\":\"azure.resource.id\",\"operator\":\"included\",\"type\":\"wildcard\",\"value\":\"*/NO-SUCH-VM-{i}/*\"}}]}}"
        ));
    }
    items.push(']');
    let exceptions = dir.join("exceptions.json");
    std::fs::write(&exceptions, items).unwrap();
    let mut records = Vec::new();
    generate(
        &CorpusSpec {
            records: 60,
            shape: CorpusShape::Raw,
            true_positive_rate: 1.0,
            near_miss_rate: 0.0,
            seed: 3,
        },
        &mut records,
    )
    .unwrap();
    let (code, out, err) = both(
        &["--exceptions", exceptions.to_str().unwrap()],
        &envelope_of(&records),
    );
    assert_eq!((code, out.lines().count()), (ALERTS, 60), "{err}");
}

/// A gzip copy of every shipped fixture gives the same alerts, in the same order, as the
/// fixtures themselves.
#[test]
fn gzip_copies_of_the_fixtures_give_the_fixtures_alerts() {
    let dir = scratch("gzip-fixtures");
    let fixtures = vmext_test_support::fixture_files();
    assert!(fixtures.len() >= 60);
    let mut plain = Vec::new();
    let mut gzipped = Vec::new();
    for fixture in &fixtures {
        let bytes = std::fs::read(fixture).unwrap();
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let parent = fixture
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        let copy = dir.join(format!("{parent}-{name}.gz"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes).unwrap();
        std::fs::write(&copy, encoder.finish().unwrap()).unwrap();
        plain.push(fixture.to_string_lossy().into_owned());
        gzipped.push(copy.to_string_lossy().into_owned());
    }
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let gzipped: Vec<&str> = gzipped.iter().map(String::as_str).collect();
    let (code, expected, _) = both(&plain, b"");
    assert_eq!(code, ALERTS);
    assert_eq!(expected.lines().count(), 27);
    let (code, out, err) = both(&gzipped, b"");
    assert_eq!((code, out), (ALERTS, expected), "{err}");
}
