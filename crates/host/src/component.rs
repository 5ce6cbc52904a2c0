//! Running the rule as a WebAssembly component under wasmtime.
//!
//! The component (`wasm32-wasip2`, world `vmext:detect/filter`) is loaded once and called per
//! document. Each store has a memory cap and each call a deadline (epoch interruption): a guest
//! that traps, runs out of memory or never returns costs one document (one record, for an
//! envelope, which is then evaluated again member by member), reported as failed with a
//! one-line reason, and the next document runs in a fresh instance. The component is given no WASI at all: the
//! imports that Rust's standard library declares are defined as traps, so it can reach no file,
//! socket, clock or environment.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use vmext_engine::{Explanation, ProfileName, Requirement, Term};
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

use crate::evaluator::{Chunk, DocumentResult, Evaluator, RecordResult};

/// Host bindings generated from `wit/detector.wit` (documented there).
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "filter",
        // Parameters borrow: documents go to the guest straight from the scan's buffer.
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

use bindings::Filter;
pub use bindings::exports::vmext::detect::detector as api;

/// Finds the component: `explicit` if given, else `$VMEXT_COMPONENT`, else next to the running
/// executable, else where `cargo xtask` builds it relative to the executable's target folder.
pub fn find_component(explicit: Option<&Path>) -> Result<std::path::PathBuf, SetupError> {
    use vmext_artefacts::{Artefact, GUEST_FILE};
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("VMEXT_COMPONENT") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| SetupError::Locate(e.to_string()))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [
        dir.join(GUEST_FILE),
        dir.join(Artefact::Component.path_from_host_binary()),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            SetupError::Locate(format!(
                "the WebAssembly component {GUEST_FILE} was not found next to the executable \
                 or in its target folder; build it with `cargo xtask run`, pass --component \
                 PATH, or use --engine native"
            ))
        })
}

/// How often the epoch advances; the unit of [`Limits::deadline`].
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource limits for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may have.
    pub memory_bytes: usize,
    /// The longest one call may run.
    pub deadline: Duration,
}

impl Default for Limits {
    /// 256 MiB and 5 s: far above what a log record needs, low enough to stop a runaway.
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(5),
        }
    }
}

/// Which rule the component should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The built-in seed rule.
    Seed,
    /// The text of an Elastic detection-rules TOML file.
    Toml(String),
    /// A bare KQL query.
    Query(String),
}

impl RuleSource {
    /// The same source for the engine linked into this process.
    pub fn for_engine(&self) -> vmext_engine::RuleSource<'_> {
        match self {
            RuleSource::Seed => vmext_engine::RuleSource::Seed,
            RuleSource::Toml(text) => vmext_engine::RuleSource::Toml(text),
            RuleSource::Query(text) => vmext_engine::RuleSource::Query(text),
        }
    }
}

/// The profile and exceptions a detector is configured with (default: faithful, none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectorOptions {
    /// The profile.
    pub profile: ProfileName,
    /// The text of an exceptions file.
    pub exceptions: Option<String>,
}

/// Why the component could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The component file could not be found.
    #[error("{0}")]
    Locate(String),
    /// wasmtime could not load, link or start the component. (Its whole chain is in the
    /// message, so it is not also given as the source.)
    #[error("cannot run the component: {0:#}")]
    Wasm(wasmtime::Error),
    /// The component refused the rule.
    #[error("the component refused the rule: {0}")]
    Rule(String),
    /// Building the detector ran into a limit or trapped (the one-line reason, as for a
    /// document: memory cap, deadline or trap).
    #[error("the component could not build the detector: {0}")]
    Build(String),
    /// The thread that enforces the per-document deadline could not be started: without it
    /// a document that never ends would stop the scan, so the component is not run.
    #[error("cannot start the deadline thread")]
    Ticker(#[source] std::io::Error),
}

impl From<wasmtime::Error> for SetupError {
    fn from(e: wasmtime::Error) -> Self {
        SetupError::Wasm(e)
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] until dropped.
///
/// The thread waits on a channel rather than sleeping, so that dropping the ticker wakes it at
/// once: a sleeping thread would hold up every run's exit by up to one tick (BENCHMARKS.md,
/// "The component's start").
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vmext-epoch".to_owned())
            .spawn(move || {
                // Nothing is ever sent: the wait ends by timeout (a tick) or when the sender
                // is dropped.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread from its wait.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a store carries: its resource limits, and whether the guest ran into the memory cap
/// (so that a trap after it can be reported as "memory cap", not as the trap it led to).
struct State {
    limits: StoreLimits,
    memory_bytes: usize,
    hit_memory_cap: bool,
}

impl wasmtime::ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.hit_memory_cap |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A loaded, compiled component, ready to instantiate. Compiling is the expensive part (see
/// BENCHMARKS.md), so compiled code is cached across runs ([`crate::compile_cache`]); one runtime can
/// serve many evaluators.
pub struct ComponentRuntime {
    engine: Engine,
    component: Component,
    linker: Linker<State>,
    _ticker: Ticker,
}

impl ComponentRuntime {
    /// Loads and compiles the component at `path`.
    pub fn load(path: &Path) -> Result<ComponentRuntime, SetupError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let component = crate::compile_cache::component(&engine, path)?;
        let mut linker = Linker::new(&engine);
        // No WASI: whatever the standard library imports traps if it is ever called.
        linker.define_unknown_imports_as_traps(&component)?;
        let ticker = Ticker::start(engine.clone()).map_err(SetupError::Ticker)?;
        Ok(ComponentRuntime {
            engine,
            component,
            linker,
            _ticker: ticker,
        })
    }

    /// The component's imports, as `name` strings (for auditing what it can reach).
    pub fn imports(&self) -> Vec<String> {
        self.component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// The component's exports, as `name` strings.
    pub fn exports(&self) -> Vec<String> {
        self.component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    fn store(&self, limits: Limits) -> Store<State> {
        let memory_bytes = limits.memory_bytes;
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .instances(4)
            .build();
        let state = State {
            limits,
            memory_bytes,
            hit_memory_cap: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        store
    }
}

impl Limits {
    fn deadline_ticks(&self) -> u64 {
        let ticks = self.deadline.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// One live instance with its detector.
struct Live {
    store: Store<State>,
    bindings: Filter,
    detector: ResourceAny,
}

impl Live {
    /// One call into the guest's detector, `f` given the detector's methods, the store and the
    /// detector's handle. Before it: a fresh deadline, and the memory-cap flag cleared, so that
    /// a trap is blamed on this call alone.
    fn call<T>(
        &mut self,
        limits: &Limits,
        f: impl FnOnce(api::GuestDetector<'_>, &mut Store<State>, ResourceAny) -> wasmtime::Result<T>,
    ) -> wasmtime::Result<T> {
        self.store.set_epoch_deadline(limits.deadline_ticks());
        self.store.data_mut().hit_memory_cap = false;
        let methods = self.bindings.vmext_detect_detector().detector();
        f(methods, &mut self.store, self.detector)
    }
}

/// The rule running in the component: an [`Evaluator`] over wasmtime.
pub struct ComponentEvaluator {
    runtime: Arc<ComponentRuntime>,
    rule: RuleSource,
    options: DetectorOptions,
    limits: Limits,
    live: Live,
    /// The guest's own prefilter (its `prefilter` export), run in this process so that a
    /// document it rejects is not copied into the guest; `None` if the guest's formula could
    /// not be had or rebuilt, and the guest applies it itself.
    prefilter: Option<Requirement>,
    /// Instances replaced after a trap or a limit.
    restarts: u64,
}

impl ComponentEvaluator {
    /// Instantiates the component and creates the detector for `rule`, under `limits`.
    pub fn new(
        runtime: Arc<ComponentRuntime>,
        rule: RuleSource,
        limits: Limits,
    ) -> Result<Self, SetupError> {
        ComponentEvaluator::configured(runtime, rule, DetectorOptions::default(), limits)
    }

    /// Like [`ComponentEvaluator::new`], with a profile and exceptions (the component's
    /// `configure` constructor; the default options use the plain constructors).
    pub fn configured(
        runtime: Arc<ComponentRuntime>,
        rule: RuleSource,
        options: DetectorOptions,
        limits: Limits,
    ) -> Result<Self, SetupError> {
        let mut live = instantiate(&runtime, &rule, &options, limits)?;
        let prefilter = match live.call(&limits, |d, store, detector| {
            d.call_prefilter(store, detector)
        }) {
            Ok(terms) => rebuild_prefilter(&terms),
            Err(_) => {
                // An instance that trapped cannot be called again: start afresh, and leave
                // the prefilter to the guest.
                live = instantiate(&runtime, &rule, &options, limits)?;
                None
            }
        };
        Ok(ComponentEvaluator {
            runtime,
            rule,
            options,
            limits,
            live,
            prefilter,
            restarts: 0,
        })
    }

    /// The guest's prefilter as this process runs it (see [`Evaluator::rejects`]), or `None`
    /// when the guest applies it itself.
    pub fn prefilter(&self) -> Option<&Requirement> {
        self.prefilter.as_ref()
    }

    /// How many times a fresh instance replaced one that trapped or hit a limit.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// The rule as the component reports it.
    pub fn rule_info(&mut self) -> Result<api::RuleInfo, SetupError> {
        Ok(self.live.call(&self.limits, |d, store, detector| {
            d.call_rule(store, detector)
        })?)
    }

    /// Replaces the instance after a trap. If even a fresh instance cannot be made, the old
    /// one is kept and later calls report its failure.
    fn recover(&mut self) {
        if let Ok(live) = instantiate(&self.runtime, &self.rule, &self.options, self.limits) {
            self.live = live;
            self.restarts += 1;
        }
    }
}

fn instantiate(
    runtime: &ComponentRuntime,
    rule: &RuleSource,
    options: &DetectorOptions,
    limits: Limits,
) -> Result<Live, SetupError> {
    let mut store = runtime.store(limits);
    store.set_epoch_deadline(limits.deadline_ticks());
    let bindings = Filter::instantiate(&mut store, &runtime.component, &runtime.linker)?;
    let guest = bindings.vmext_detect_detector().detector();
    let built = match rule {
        _ if *options != DetectorOptions::default() => {
            let source = match rule {
                RuleSource::Seed => api::RuleSource::Seed,
                RuleSource::Toml(t) => api::RuleSource::Toml(t),
                RuleSource::Query(q) => api::RuleSource::Query(q),
            };
            let profile = match options.profile {
                ProfileName::Faithful => api::Profile::Faithful,
                ProfileName::Hardened => api::Profile::Hardened,
            };
            guest.call_configure(&mut store, source, profile, options.exceptions.as_deref())
        }
        RuleSource::Seed => guest.call_seed(&mut store).map(Ok),
        RuleSource::Toml(text) => guest.call_from_toml(&mut store, text),
        RuleSource::Query(kql) => guest.call_from_query(&mut store, kql),
    };
    // A trap while building (a query too costly for the limits) is named like a document's.
    let detector = built
        .map_err(|trap| SetupError::Build(trap_reason(&trap, store.data(), &limits)))?
        .map_err(|e| SetupError::Rule(describe_error(&e)))?;
    Ok(Live {
        store,
        bindings,
        detector,
    })
}

/// The guest's prefilter formula as a requirement of this process, or `None` if the terms are
/// not one well-formed formula within the bounds (then the guest keeps applying it).
fn rebuild_prefilter(terms: &[api::PrefilterTerm]) -> Option<Requirement> {
    let terms: Vec<Term> = terms
        .iter()
        .map(|t| match t {
            api::PrefilterTerm::Anything => Term::Anything,
            api::PrefilterTerm::Nothing => Term::Nothing,
            api::PrefilterTerm::Contains(n) => Term::Contains {
                literal: n.literal.clone(),
                case_insensitive: n.case_insensitive,
            },
            api::PrefilterTerm::All(n) => Term::All(*n),
            api::PrefilterTerm::AnyOf(n) => Term::AnyOf(*n),
        })
        .collect();
    Requirement::from_terms(&terms).ok()
}

impl Evaluator for ComponentEvaluator {
    fn prefers_batches(&self) -> bool {
        true
    }

    /// The guest's own prefilter, run natively: what `evaluate` would answer `rejected` for.
    fn rejects(&self, document: &[u8]) -> bool {
        self.prefilter.as_ref().is_some_and(|r| !r.admits(document))
    }

    /// One call for the whole chunk; if a document traps, the chunk is retried one document
    /// at a time so that only that document fails.
    fn evaluate_batch(&mut self, chunk: &Chunk, explain: bool) -> Vec<DocumentResult> {
        // The guest reads 32-bit offsets; a chunk too large for them goes one by one (and
        // fails document by document on the memory cap long before that).
        let Some(ends) = chunk
            .ends()
            .iter()
            .map(|e| u32::try_from(*e).ok())
            .collect::<Option<Vec<u32>>>()
        else {
            return self.one_by_one(chunk, explain);
        };
        let result = self.live.call(&self.limits, |d, store, detector| {
            d.call_evaluate_chunk(store, detector, chunk.bytes(), &ends, explain)
        });
        match result {
            Ok(list) if list.len() == chunk.len() => list.into_iter().map(convert).collect(),
            Ok(_) => self.one_by_one(chunk, explain),
            // One document stopped the chunk: retry one by one so that only it fails.
            Err(_) => {
                self.recover();
                self.one_by_one(chunk, explain)
            }
        }
    }

    fn evaluate_members(
        &mut self,
        members: &[&[u8]],
        first_index: usize,
        explain: bool,
    ) -> Vec<RecordResult> {
        match self.members_once(members, first_index, explain) {
            Ok(list) => list,
            Err(_) if members.len() > 1 => members
                .iter()
                .enumerate()
                .flat_map(|(i, m)| self.evaluate_members(&[m], first_index + i, explain))
                .collect(),
            Err(reason) => vec![RecordResult::failed(
                first_index,
                format!("the guest failed on this record: {reason}"),
            )],
        }
    }

    fn evaluate(&mut self, document: &[u8], explain: bool) -> DocumentResult {
        let result = self.live.call(&self.limits, |d, store, detector| {
            d.call_evaluate(store, detector, document, explain)
        });
        match result {
            Ok(r) => convert(r),
            Err(trap) => {
                let reason = trap_reason(&trap, self.live.store.data(), &self.limits);
                self.recover();
                // An envelope that failed whole is evaluated again in pieces, and member by
                // member where a piece fails, so that only the members that fail alone are lost.
                if let Some(members) = vmext_engine::documents::envelope_members(document) {
                    // The piece the whole envelope was: straight to one member at a time.
                    let per_piece = if members.len() <= vmext_engine::documents::MEMBERS_PER_PIECE {
                        1
                    } else {
                        vmext_engine::documents::MEMBERS_PER_PIECE
                    };
                    let records =
                        vmext_engine::documents::envelope_pieces(document, &members, per_piece)
                            .into_iter()
                            .flat_map(|(first, piece)| {
                                self.evaluate_members(&piece, first, explain)
                            })
                            .collect();
                    return DocumentResult::Records(records);
                }
                DocumentResult::Failed(format!("the guest failed on this document: {reason}"))
            }
        }
    }
}

impl ComponentEvaluator {
    /// The documents of a chunk, one call each.
    fn one_by_one(&mut self, chunk: &Chunk, explain: bool) -> Vec<DocumentResult> {
        chunk
            .documents()
            .map(|d| self.evaluate(d, explain))
            .collect()
    }

    /// One call per piece of an envelope; if a member traps, the piece is retried one member
    /// at a time so that only that member fails.
    fn members_once(
        &mut self,
        members: &[&[u8]],
        first_index: usize,
        explain: bool,
    ) -> Result<Vec<RecordResult>, String> {
        let first =
            u32::try_from(first_index).map_err(|_| "envelope index over 2^32".to_owned())?;
        let result = self.live.call(&self.limits, |d, store, detector| {
            d.call_evaluate_members(store, detector, members, first, explain)
        });
        match result {
            Ok(list) => Ok(list.into_iter().map(convert_record).collect()),
            Err(trap) => {
                let reason = trap_reason(&trap, self.live.store.data(), &self.limits);
                self.recover();
                Err(reason)
            }
        }
    }
}

/// A one-line reason for a trap: the deadline, the memory cap, or the guest's own failure
/// (never a backtrace: the first line of the error, which names the trap).
fn trap_reason(error: &wasmtime::Error, state: &State, limits: &Limits) -> String {
    if state.hit_memory_cap {
        return format!("memory cap of {} MiB reached", state.memory_bytes >> 20);
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!(
            "deadline exceeded ({} ms per call)",
            limits.deadline.as_millis()
        ),
        Some(trap) => format!("trap: {trap}"),
        None => {
            let text = error.to_string();
            format!("trap: {}", text.lines().next().unwrap_or_default())
        }
    }
}

fn describe_error(e: &api::Error) -> String {
    match e {
        api::Error::InvalidJson(l) => format!("invalid JSON: {} at byte {}", l.message, l.offset),
        api::Error::NotAnObject => "the record is not a JSON object".to_owned(),
        api::Error::DuplicateKey(k) => format!("duplicate key `{k}`"),
        api::Error::InvalidRule(m) => format!("invalid rule file: {m}"),
        api::Error::UnsupportedRuleType(t) => format!("unsupported rule type `{t}`"),
        api::Error::UnsupportedLanguage(l) => format!("unsupported query language `{l}`"),
        api::Error::QuerySyntax(l) => format!("query syntax error: {} at {}", l.message, l.offset),
        api::Error::InvalidProfile(m) => m.clone(),
        api::Error::InvalidExceptions(m) => format!("exceptions: {m}"),
    }
}

fn convert(result: api::DocumentResult) -> DocumentResult {
    match result {
        api::DocumentResult::Rejected => DocumentResult::Rejected,
        api::DocumentResult::Failed(f) => DocumentResult::Failed(f.message),
        api::DocumentResult::Records(records) => {
            DocumentResult::Records(records.into_iter().map(convert_record).collect())
        }
    }
}

fn convert_record(r: api::RecordResult) -> RecordResult {
    let (alert_json, error, suppressed_by) = match r.verdict {
        api::Verdict::Alert(a) => (Some(a.ecs_json), None, None),
        api::Verdict::NoMatch => (None, None, None),
        api::Verdict::Suppressed(s) => (None, None, Some(s.item_id)),
        api::Verdict::Invalid(f) => (None, Some(f.message), None),
    };
    RecordResult {
        alert_json,
        error,
        suppressed_by,
        json: r.result_json,
        outline: r
            .explanation
            .map(|clauses| unflatten(&clauses).to_outline()),
    }
}

/// Rebuilds the explanation tree from its depth-first list.
fn unflatten(clauses: &[api::Clause]) -> Explanation {
    let node = |c: &api::Clause| Explanation {
        clause: c.text.clone(),
        held: c.held,
        field: c.field.clone(),
        seen: c.seen.clone(),
        children: Vec::new(),
    };
    // A stack of the open ancestors; a clause closes every ancestor at its depth or deeper.
    let mut stack: Vec<(u32, Explanation)> = Vec::new();
    let close = |stack: &mut Vec<(u32, Explanation)>, depth: u32| {
        while stack.len() > 1 && stack.last().is_some_and(|(d, _)| *d >= depth) {
            if let Some((_, done)) = stack.pop()
                && let Some((_, parent)) = stack.last_mut()
            {
                parent.children.push(done);
            }
        }
    };
    for c in clauses {
        close(&mut stack, c.depth);
        stack.push((c.depth, node(c)));
    }
    close(&mut stack, 0);
    stack.pop().map(|(_, e)| e).unwrap_or_else(|| Explanation {
        clause: String::new(),
        held: false,
        field: None,
        seen: Vec::new(),
        children: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(literal: &str) -> api::PrefilterTerm {
        api::PrefilterTerm::Contains(api::Needle {
            literal: literal.to_owned(),
            case_insensitive: false,
        })
    }

    /// A formula the host cannot rebuild leaves the prefilter to the guest; one it can gives
    /// the requirement its terms describe.
    #[test]
    fn only_a_well_formed_formula_is_run_here() {
        use api::PrefilterTerm::{All, AnyOf, Nothing};
        for malformed in [
            vec![],
            vec![All(2), contains("a")],
            vec![contains("a"), Nothing],
            std::iter::repeat_n(AnyOf(1), vmext_engine::MAX_TERM_DEPTH + 1)
                .chain([contains("a")])
                .collect(),
        ] {
            assert!(rebuild_prefilter(&malformed).is_none(), "{malformed:?}");
        }
        let rebuilt = rebuild_prefilter(&[All(2), contains("WRITE"), contains("User")]);
        let rebuilt = rebuilt.as_ref().map(Requirement::terms);
        let contains = |l: &str| Term::Contains {
            literal: l.to_owned(),
            case_insensitive: false,
        };
        // Longest literal first, as the engine orders a conjunction.
        assert_eq!(
            rebuilt,
            Some(vec![Term::All(2), contains("WRITE"), contains("User")])
        );
    }
}
