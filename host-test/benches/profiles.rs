//! Criterion benchmark of the two profiles on the generated corpus: every line of a corpus
//! evaluated by the faithful and by the hardened detector, as `vmext-detect scan --engine
//! native` does (prefilter, then the query on what it admits), and the prefilter alone. Beside
//! them, the validating scan that `scan` runs on every line (to find bad documents, those the
//! prefilter rejects included) and the Fluent Bit filter runs in annotate mode.
//!
//! `cargo bench -p host-test --bench profiles`. The corpus is the benchmarks' usual one
//! (seed 1, 0.1 % true positives, 5 % near misses), 20,000 records of each shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use host_test::generate::{CorpusShape, CorpusSpec, generate};
use vmext_engine::{Detector, Outcome, ProfileName, Verdict};

fn corpus(shape: CorpusShape) -> Vec<u8> {
    let spec = CorpusSpec {
        records: 20_000,
        shape,
        ..CorpusSpec::default()
    };
    let mut out = Vec::new();
    generate(&spec, &mut out).unwrap();
    out
}

/// The corpus's lines, found with memchr as `scan` finds them (a byte-by-byte split would cost
/// more than the faithful prefilter itself).
fn lines(corpus: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', corpus)
        .chain(std::iter::once(corpus.len()))
        .filter_map(move |end| {
            let line = corpus.get(start..end);
            start = end + 1;
            line.filter(|l| !l.is_empty())
        })
}

fn scan(detector: &Detector, corpus: &[u8]) -> usize {
    let mut alerts = 0;
    for line in lines(corpus) {
        if let Ok(Outcome::Evaluated(results)) = detector.evaluate(line) {
            alerts += results
                .iter()
                .filter(|r| matches!(r.verdict, Verdict::Alert(_)))
                .count();
        }
    }
    alerts
}

/// The prefilter alone: how many lines it admits (the part of `scan` before any parse).
fn admitted(detector: &Detector, corpus: &[u8]) -> usize {
    lines(corpus).filter(|l| detector.may_match(l)).count()
}

/// The validating scan alone: how many lines are valid JSON.
fn valid(corpus: &[u8]) -> usize {
    lines(corpus)
        .filter(|l| vmext_json::validate(l).is_ok())
        .count()
}

fn profiles(c: &mut Criterion) {
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    for (label, shape) in [("ecs", CorpusShape::Ecs), ("raw", CorpusShape::Raw)] {
        let text = corpus(shape);
        // The hardened profile alerts on everything the faithful one does, and more.
        assert!(scan(&hardened, &text) >= scan(&faithful, &text));
        let mut group = c.benchmark_group(format!("generated corpus/{label}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.sample_size(20);
        group.bench_function("faithful", |b| b.iter(|| scan(&faithful, black_box(&text))));
        group.bench_function("hardened", |b| b.iter(|| scan(&hardened, black_box(&text))));
        group.bench_function("faithful, prefilter only", |b| {
            b.iter(|| admitted(&faithful, black_box(&text)))
        });
        group.bench_function("hardened, prefilter only", |b| {
            b.iter(|| admitted(&hardened, black_box(&text)))
        });
        group.bench_function("validating scan only", |b| {
            b.iter(|| valid(black_box(&text)))
        });
        group.finish();
    }
}

criterion_group!(benches, profiles);
criterion_main!(benches);
