//! `vrl-scan [--program PROGRAM.vrl] [--decoded] FILE`: runs the generated VRL program (or the
//! given one) over an NDJSON file, as Vector's `remap` would (one event per line, decoded as
//! Vector's JSON decoder does), and reports records per second. For the benchmark tables' VRL
//! rows; build with `--release`.
//!
//! The rate counts decoding, as Vector pays it per event. With `--decoded`, every line is
//! decoded before the clock starts and the rate is the program's alone (each event still
//! dropped after its run, as `remap` hands it on), which is what sets two programs apart when
//! decoding takes most of the time.

use std::process::ExitCode;
use std::time::Instant;

use vmext_vrl_parity::{Vrl, vector_event};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let decoded = args.iter().any(|a| a == "--decoded");
    args.retain(|a| a != "--decoded");
    let (program_path, path) = match args.as_slice() {
        [path] => (None, path.clone()),
        [flag, program, path] if flag == "--program" => (Some(program.clone()), path.clone()),
        _ => {
            eprintln!("usage: vrl-scan [--program PROGRAM.vrl] [--decoded] FILE.ndjson");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vrl-scan: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let compiling = Instant::now();
    let compiled = match &program_path {
        None => Vrl::seed(),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(source) => Vrl::compile(&source),
            Err(e) => Err(format!("{p}: {e}")),
        },
    };
    let program = match compiled {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vrl-scan: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "vrl-scan: program compiled in {:.2} s",
        compiling.elapsed().as_secs_f64()
    );
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (mut records, mut alerts, mut skipped, mut errors) = (0u64, 0u64, 0u64, 0u64);
    // Decoding is part of what Vector does per event, so it is timed too, unless asked not to.
    let decode = |line: &&[u8]| {
        let event = vector_event(line);
        if event.is_none() {
            skipped += 1;
        }
        event
    };
    let mut start = Instant::now();
    let events: Box<dyn Iterator<Item = vrl::value::Value> + '_> = if decoded {
        let events: Vec<_> = lines.iter().filter_map(decode).collect();
        start = Instant::now();
        Box::new(events.into_iter())
    } else {
        Box::new(lines.iter().filter_map(decode))
    };
    for event in events {
        records += 1;
        match program.run(event) {
            Ok(vrl::value::Value::Object(out)) => {
                if let Some(vrl::value::Value::Array(items)) = out.get(vmext_vrl::ANNOTATION_KEY) {
                    alerts += items.len() as u64;
                }
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{records} records, {alerts} alerts, {skipped} lines not JSON objects, {errors} runtime errors in {seconds:.3} s: {:.0} records/s",
        records as f64 / seconds.max(f64::MIN_POSITIVE)
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
