//! `vmext-detect`: run the detection rule over log files.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use vmext_engine::{Detector, ProfileName};
use vmext_host::component::{
    ComponentEvaluator, ComponentRuntime, DetectorOptions, Limits, RuleSource, find_component,
};
use vmext_host::evaluator::{Evaluator, NativeEvaluator};
use vmext_host::generate::{CorpusShape, CorpusSpec, generate};
use vmext_host::input::DEFAULT_MAX_DOCUMENT_BYTES;
use vmext_host::scan::{Input, Report, ScanOptions, exit, scan};

const HELP: &str = "\
vmext-detect: flags Azure VM extension deployments by users in Azure Activity Logs, with
Elastic's detection rule evaluated exactly as Elastic would.

USAGE:
    vmext-detect scan [OPTIONS] [FILE...]
    vmext-detect rule [--rule FILE.toml | --query KQL] [--profile P] [--exceptions FILE]
    vmext-detect serve [--port N] [DIR]
    vmext-detect generate [--records N] [--shape ecs|raw] [--seed N]
                          [--true-positives RATE] [--near-misses RATE]
    vmext-detect efficacy [--records N] [--seed N]
    vmext-detect fluent-bit [--module PATH] [--function NAME] [--accessible-path DIR,...] [FILE...]

COMMANDS:
    scan    Read records from each FILE (or stdin when no FILE or `-` is given), write alerts
            as NDJSON to stdout, each bad document (with its file and line) and a summary to
            stderr. Records may come one per line (NDJSON, JSON Lines, Azure's PT1H.json) or
            as JSON documents spanning lines (a {\"records\":[...]} envelope), whatever the
            file's name; gzip-compressed input is decompressed. A broken document costs only
            itself: reading goes on at the next line.
    rule    Print the rule's identity, query, warnings and prefilter literals.
    serve   Serve the rule playground (DIR, default `playground`) on http://127.0.0.1:PORT
            (default 8080) with a strict Content-Security-Policy; build it first with
            `cargo xtask playground`, which also starts this server.
    generate
            Write a deterministic synthetic corpus (NDJSON) to stdout: ECS records of about
            1 KB or raw export records of about 1.8 KB; by default 100000 records, 0.1 % true
            positives and 5 % near misses (the rule's operation, failing another clause).
    fluent-bit
            Run the Fluent Bit module on NDJSON records exactly as Fluent Bit's wasm filter
            calls it (an emulation of its calling convention under wasmtime, not Fluent Bit):
            each record the module returns is written to stdout, a summary to stderr.
            --function is the exported function (default vmext_annotate); --accessible-path
            is Fluent Bit's accessible_paths (default `.`): each comma-separated DIR is
            preopened for the module under its own name, a relative one from the working
            directory, and a missing one is an error, as in Fluent Bit (so the module reads
            /etc/vmext/exceptions.json from /etc/vmext, or from etc/vmext or . relative).
    efficacy
            Generate an adversarial corpus (each category of running code on a machine through
            Azure's control plane, from independent sources) and a benign one (look-alikes:
            service principals, reads and deletes, failures, monitoring and security agents), N
            records of each kind (default 500) in both shapes, and print each profile's recall
            and false positives as a Markdown table.

OPTIONS:
    --rule FILE.toml    Run this Elastic detection-rules TOML file (type query, language kuery)
                        instead of the built-in rule.
    --query KQL         Run a bare KQL query instead of the built-in rule.
    --profile PROFILE   `faithful` (default): the rule exactly as Elastic evaluates it.
                        `hardened`: the rule's opt-in hardened profile, which closes its
                        blind spots (see the README). With --query, the query takes the place
                        of the hardened profile's (its case-insensitive and derived fields,
                        and the seed rule's metadata, are kept).
    --exceptions FILE   Suppress alerts that an Elastic exception item in FILE matches (an
                        item object, an array of items, or a Kibana NDJSON export). Suppressed
                        records are counted in the summary; --explain names the item.
    --explain           For every record, print its verdict and why, clause by clause.
    --explain-json      For every record, print the result object (verdict, alert,
                        explanation) as NDJSON.
    --engine ENGINE     `component` (default): run the rule as the WebAssembly component under
                        wasmtime, with a memory cap and a deadline per document.
                        `native`: run the engine linked into this binary.
    --component PATH    The component to run (default: $VMEXT_COMPONENT, or vmext_guest.wasm
                        next to this executable or in its cargo target folder).
    --max-document-bytes N
                        Skip (and report) documents longer than N bytes without holding them
                        in memory (default 67108864, 64 MiB). Both engines apply the same cap.
    --no-progress       Never draw the progress bar (it is drawn only on a terminal).
    -h, --help          Print this help.
    -V, --version       Print the version.

EXIT STATUS (scan and fluent-bit): 0, or the sum of the bits that hold:
    0   the scan finished: no alert, every document valid, every input read
    1   at least one alert was raised
    4   some documents or records were invalid or over the size cap (reported on stderr)
    8   some input could not be opened or read to its end (reported on stderr)
    2   the scan could not run at all (bad arguments, rule or exceptions); never combined
";

struct Args {
    command: String,
    port: u16,
    corpus: CorpusSpec,
    /// `--records` and `--seed` as given (the efficacy command has its own defaults).
    records: Option<u64>,
    seed: Option<u64>,
    native: bool,
    component: Option<PathBuf>,
    module: Option<PathBuf>,
    function: String,
    accessible_path: Option<String>,
    rule: Option<PathBuf>,
    query: Option<String>,
    profile: ProfileName,
    exceptions: Option<PathBuf>,
    report: Report,
    progress: bool,
    max_document: usize,
    inputs: Vec<Input>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut raw = std::env::args().skip(1);
    let mut args = Args {
        command: String::new(),
        port: 8080,
        corpus: CorpusSpec::default(),
        records: None,
        seed: None,
        native: false,
        component: None,
        module: None,
        function: "vmext_annotate".to_owned(),
        accessible_path: None,
        rule: None,
        query: None,
        profile: ProfileName::Faithful,
        exceptions: None,
        report: Report::Alerts,
        progress: true,
        max_document: DEFAULT_MAX_DOCUMENT_BYTES,
        inputs: Vec::new(),
    };
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-V" | "--version" => {
                println!("vmext-detect {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--rule" => {
                args.rule = Some(raw.next().ok_or("--rule needs a file")?.into());
            }
            "--query" => args.query = Some(raw.next().ok_or("--query needs a KQL query")?),
            "--profile" => {
                let name = raw
                    .next()
                    .ok_or("--profile needs `faithful` or `hardened`")?;
                args.profile = ProfileName::parse(&name).map_err(|e| e.to_string())?;
            }
            "--exceptions" => {
                args.exceptions = Some(raw.next().ok_or("--exceptions needs a file")?.into());
            }
            "--engine" => match raw.next().as_deref() {
                Some("native") => args.native = true,
                Some("component") => args.native = false,
                other => {
                    return Err(format!(
                        "--engine takes `component` or `native`, not {other:?}"
                    ));
                }
            },
            "--module" => args.module = Some(raw.next().ok_or("--module needs a file")?.into()),
            "--function" => args.function = raw.next().ok_or("--function needs a name")?,
            "--accessible-path" => {
                args.accessible_path =
                    Some(raw.next().ok_or("--accessible-path needs a directory")?);
            }
            "--component" => {
                args.component = Some(raw.next().ok_or("--component needs a file")?.into());
            }
            "--port" => {
                args.port = u16::try_from(number(raw.next(), "--port")?)
                    .map_err(|_| "--port needs a number below 65536".to_owned())?
            }
            "--records" => {
                args.corpus.records = number(raw.next(), "--records")?;
                args.records = Some(args.corpus.records);
            }
            "--seed" => {
                args.corpus.seed = number(raw.next(), "--seed")?;
                args.seed = Some(args.corpus.seed);
            }
            "--true-positives" => {
                args.corpus.true_positive_rate = rate(raw.next(), "--true-positives")?
            }
            "--near-misses" => args.corpus.near_miss_rate = rate(raw.next(), "--near-misses")?,
            "--shape" => {
                args.corpus.shape = match raw.next().as_deref() {
                    Some("ecs") => CorpusShape::Ecs,
                    Some("raw") => CorpusShape::Raw,
                    other => return Err(format!("--shape takes `ecs` or `raw`, not {other:?}")),
                }
            }
            "--explain" => args.report = Report::Explain,
            "--explain-json" => args.report = Report::ExplainJson,
            "--no-progress" => args.progress = false,
            "--max-document-bytes" => {
                args.max_document = usize::try_from(number(raw.next(), "--max-document-bytes")?)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--max-document-bytes needs a positive number of bytes")?;
            }
            "-" => args.inputs.push(Input::Stdin),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            word if args.command.is_empty() => args.command = word.to_owned(),
            path => args.inputs.push(Input::File(path.into())),
        }
    }
    if args.rule.is_some() && args.query.is_some() {
        return Err("give either --rule or --query, not both".to_owned());
    }
    Ok(Some(args))
}

fn number(value: Option<String>, flag: &str) -> Result<u64, String> {
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag} needs a whole number"))
}

fn rate(value: Option<String>, flag: &str) -> Result<f64, String> {
    value
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{flag} needs a rate between 0 and 1"))
}

/// The rule, profile and exceptions the arguments name, as texts both engines load.
struct Loaded {
    rule: RuleSource,
    options: DetectorOptions,
}

fn load(args: &Args) -> Result<Loaded, String> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let rule = match (&args.rule, &args.query) {
        (Some(path), _) => RuleSource::Toml(read(path)?),
        (None, Some(query)) => RuleSource::Query(query.clone()),
        (None, None) => RuleSource::Seed,
    };
    let exceptions = args.exceptions.as_ref().map(read).transpose()?;
    Ok(Loaded {
        rule,
        options: DetectorOptions {
            profile: args.profile,
            exceptions,
        },
    })
}

/// The detector built natively, which validates the rule, profile and exceptions (and gives
/// the warnings) before any component runs them.
fn native_detector(args: &Args, loaded: &Loaded) -> Result<Detector, String> {
    let source = match &loaded.rule {
        RuleSource::Seed => vmext_engine::RuleSource::Seed,
        RuleSource::Toml(text) => vmext_engine::RuleSource::Toml(text),
        RuleSource::Query(text) => vmext_engine::RuleSource::Query(text),
    };
    Detector::build(
        source,
        loaded.options.profile,
        loaded.options.exceptions.as_deref(),
    )
    .map_err(|e| match (&args.rule, &e) {
        (Some(path), vmext_engine::BuildError::Rule(_)) => format!("{}: {e}", path.display()),
        (_, vmext_engine::BuildError::Exceptions(_)) => match &args.exceptions {
            Some(path) => format!("{}: {e}", path.display()),
            None => e.to_string(),
        },
        _ => e.to_string(),
    })
}

/// The rule running in the WebAssembly component, configured from the same texts.
fn component_evaluator(args: &Args, loaded: &Loaded) -> Result<ComponentEvaluator, String> {
    let path = find_component(args.component.as_deref())?;
    let runtime = ComponentRuntime::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    ComponentEvaluator::configured(
        std::sync::Arc::new(runtime),
        loaded.rule.clone(),
        loaded.options.clone(),
        Limits::default(),
    )
    .map_err(|e| e.to_string())
}

/// The `fluent-bit` command: every input record through the module, as Fluent Bit would.
fn run_fluent_bit(args: &Args) -> Result<ExitCode, String> {
    use vmext_host::fluent_bit::{FluentBitModule, Mode, find_module, run_records};
    let mode = Mode::ALL
        .into_iter()
        .find(|m| m.function_name() == args.function)
        .ok_or_else(|| format!("the module exports no filter function `{}`", args.function))?;
    let path = find_module(args.module.as_deref())?;
    let module =
        FluentBitModule::load(&path, false).map_err(|e| format!("{}: {e:#}", path.display()))?;
    // Fluent Bit's `accessible_paths`, default `.`: preopened under their own names.
    let files = vmext_host::wasi_files::WasiFiles::accessible_paths(
        args.accessible_path.as_deref().unwrap_or("."),
        std::path::Path::new("."),
    )?;
    let mut instance = module
        .instantiate_with(files)
        .map_err(|e| format!("{e:#}"))?;
    let inputs = if args.inputs.is_empty() {
        vec![Input::Stdin]
    } else {
        args.inputs.clone()
    };
    let started = Instant::now();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut records = |feed: &mut dyn FnMut(&[u8]) -> io::Result<()>| -> io::Result<()> {
        for input in &inputs {
            let reader: Box<dyn io::Read> =
                match input {
                    Input::Stdin => Box::new(io::stdin()),
                    Input::File(path) => Box::new(std::fs::File::open(path).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?),
                };
            // As Fluent Bit's `tail` input: one record per line, every non-blank line handed to
            // the module as it is (the module answers unreadable ones itself); a line over the
            // cap is reported and skipped, as `tail` skips lines over its buffer.
            let text = vmext_host::input::text_reader(reader).map_err(|e| match e {
                vmext_host::input::InputError::Io(e) => e,
                other => io::Error::new(io::ErrorKind::InvalidData, format!("{input}: {other}")),
            })?;
            vmext_host::input::for_each_line(text, args.max_document, |n, line| match line {
                vmext_host::input::Line::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                    feed(t)
                }
                vmext_host::input::Line::TooLong(len) => {
                    eprintln!("{input}:{n}: line of {len} bytes over the size cap; skipped");
                    Ok(())
                }
                _ => Ok(()),
            })?;
        }
        Ok(())
    };
    let summary = run_records(&mut instance, mode, "vmext", &mut records, &mut out)
        .map_err(|e| e.to_string())?;
    drop(out);
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "records {}: {} returned, {} with alerts, {} dropped, {} corrupt replies, {} traps; {:.1} MB in {:.2} s: {:.0} records/s, {:.1} MB/s",
        summary.records,
        summary.returned,
        summary.with_alerts,
        summary.records - summary.returned - summary.corrupt - summary.traps,
        summary.corrupt,
        summary.traps,
        summary.bytes as f64 / 1e6,
        secs,
        summary.records as f64 / secs,
        summary.bytes as f64 / 1e6 / secs,
    );
    let mut status = 0;
    if summary.with_alerts > 0 {
        status |= exit::ALERTS;
    }
    if summary.corrupt > 0 || summary.traps > 0 {
        status |= exit::INVALID;
    }
    Ok(ExitCode::from(status))
}

fn describe_rule(detector: &Detector) {
    let rule = detector.rule();
    println!("{} ({})", rule.name, rule.rule_id);
    println!(
        "severity {} · risk score {}",
        rule.severity, rule.risk_score
    );
    for threat in &rule.threat {
        let techniques: Vec<String> = threat
            .techniques
            .iter()
            .map(|t| format!("{} {}", t.id, t.name))
            .collect();
        println!(
            "  {} {}: {}",
            threat.tactic.id,
            threat.tactic.name,
            techniques.join(", ")
        );
    }
    println!("profile {}", detector.profile().as_str());
    println!("exception items {}", detector.exceptions().items().len());
    println!("\nquery:\n{}", detector.query().source().trim_end());
    for w in detector.query().warnings() {
        println!("warning at {}: {}", w.span.start, w.message);
    }
    println!(
        "\nprefilter literals (a record must contain them to be parsed): {:?}",
        detector.prefilter().needles()
    );
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vmext-detect: {e}\n\nRun `vmext-detect --help` for usage.");
            return ExitCode::from(2);
        }
    };
    let (loaded, detector) = match load(&args).and_then(|l| {
        let detector = native_detector(&args, &l)?;
        Ok((l, detector))
    }) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("vmext-detect: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "serve" => {
            let dir = match args.inputs.first() {
                Some(Input::File(dir)) => dir.clone(),
                _ => PathBuf::from("playground"),
            };
            if !dir.join("index.html").is_file() {
                eprintln!("vmext-detect: {} has no index.html", dir.display());
                return ExitCode::from(2);
            }
            let served = vmext_host::serve::serve(&dir, args.port, |addr| {
                // Printed on stdout so that scripts and tests can wait for it.
                println!("serving {} on http://{addr}/", dir.display());
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vmext-detect: {e}");
                    ExitCode::from(2)
                }
            }
        }
        "generate" => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
            match generate(&args.corpus, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vmext-detect: {e}");
                    ExitCode::from(2)
                }
            }
        }
        "rule" => {
            describe_rule(&detector);
            ExitCode::SUCCESS
        }
        "fluent-bit" => match run_fluent_bit(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("vmext-detect: {e}");
                ExitCode::from(2)
            }
        },
        "efficacy" => {
            use vmext_host::efficacy::{DEFAULT_RECORDS, DEFAULT_SEED, markdown, measure};
            let per_kind = args.records.unwrap_or(DEFAULT_RECORDS);
            let seed = args.seed.unwrap_or(DEFAULT_SEED);
            print!("{}", markdown(&measure(per_kind, seed), per_kind, seed));
            ExitCode::SUCCESS
        }
        "scan" => {
            let inputs = if args.inputs.is_empty() {
                vec![Input::Stdin]
            } else {
                args.inputs.clone()
            };
            for w in detector.query().warnings() {
                eprintln!("vmext-detect: warning at {}: {}", w.span.start, w.message);
            }
            let mut evaluator: Box<dyn Evaluator> = if args.native {
                Box::new(NativeEvaluator::new(detector))
            } else {
                match component_evaluator(&args, &loaded) {
                    Ok(e) => Box::new(e),
                    Err(e) => {
                        eprintln!("vmext-detect: {e}");
                        return ExitCode::from(2);
                    }
                }
            };
            let started = Instant::now();
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let mut log = io::stderr();
            let options = ScanOptions {
                report: args.report,
                progress: args.progress,
                max_document: args.max_document,
            };
            let result = scan(&inputs, evaluator.as_mut(), options, &mut out, &mut log);
            drop(out);
            match result {
                Ok(summary) => {
                    let _ = writeln!(log, "{}", summary.line(started.elapsed()));
                    ExitCode::from(summary.exit_status())
                }
                Err(e) => {
                    eprintln!("vmext-detect: {e}");
                    ExitCode::from(2)
                }
            }
        }
        "" => {
            print!("{HELP}");
            ExitCode::from(2)
        }
        other => {
            eprintln!(
                "vmext-detect: unknown command `{other}`\n\nRun `vmext-detect --help` for usage."
            );
            ExitCode::from(2)
        }
    }
}
