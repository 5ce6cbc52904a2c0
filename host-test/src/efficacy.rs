//! Detection efficacy: recall per category of attack, false positives per kind of benign
//! look-alike, for each profile and each record shape.
//!
//! The cases are **not** generated from the hardened profile's coverage table: each kind below
//! writes its events from its own list, taken from an independent source (Microsoft's extension
//! and Run Command documentation and their examples, the Stratus Red Team samples, Elastic's
//! sibling rules, whose operations a test checks against the rules' own queries). A kind that
//! the table does not cover therefore shows up as missed, which is the point.
//!
//! The **adversarial** corpus holds only malicious events: a user (or a group member)
//! successfully running code on a machine through the control plane. The **benign** corpus
//! holds look-alikes that must never alert. Both are generated from a seed, so the table is
//! reproducible; `host-test efficacy` prints it and a test keeps the README's copy current.

use std::fmt::Write as _;

use vmext_engine::{Detector, Outcome, ProfileName, Verdict};

use crate::generate::{CorpusShape, CorpusSpec, Event, Rng, ecs, event, raw};

/// Records of each kind per shape, by default.
pub const DEFAULT_RECORDS: u64 = 500;
/// The corpora's seed, by default.
pub const DEFAULT_SEED: u64 = 1;

/// One kind of generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Short label for the table.
    pub label: &'static str,
    /// Where the kind's spellings come from.
    pub source: &'static str,
    /// Malicious (belongs to the adversarial corpus) or benign.
    pub malicious: bool,
}

const fn attack(label: &'static str, source: &'static str) -> Kind {
    Kind {
        label,
        source,
        malicious: true,
    }
}

const fn benign(label: &'static str, source: &'static str) -> Kind {
    Kind {
        label,
        source,
        malicious: false,
    }
}

/// The adversarial categories, in table order.
pub const EVASIONS: [Kind; 9] = [
    attack(
        "Control: the deployment as the rule expects it",
        "the rule's query",
    ),
    attack(
        "The rule's families, spelled as Azure delivers them (any case, group principal, `…/EXTENSIONS/DSC`, `SUCCESS`)",
        "Elastic's mixed-case pipeline test; Activity Log schema",
    ),
    attack(
        "Code-executing handler named by the request body, any instance name",
        "Microsoft Learn: VM extension pages' ARM and CLI examples",
    ),
    attack(
        "Handler under the instance name the portal or CLI gives it, no request body",
        "Microsoft Learn: `az vm user update`, `az vm extension set`, DSC and Log Analytics pages",
    ),
    attack(
        "Run Command, classic and managed, on VMs and scale-set instances",
        "Elastic's sibling rules (operations checked against their queries); Stratus Red Team sample",
    ),
    attack(
        "Azure Arc-enabled servers: extensions and Run Command",
        "Microsoft Learn: Arc extension management and Run Command pages",
    ),
    attack(
        "Scale sets and scale-set instances: extension writes",
        "Microsoft Learn: Microsoft.Compute operations; Elastic's `execution_azure_vm_extension_unusual_for_host`",
    ),
    attack(
        "Handler under a name the deployer chose, request body not logged (known limit)",
        "Microsoft Learn examples' instance names (`config-app`, `myCustomScript`)",
    ),
    attack(
        "Several of the above at once",
        "combination of the sources above",
    ),
];

/// The benign kinds, in table order.
pub const BENIGN: [Kind; 6] = [
    benign(
        "Everyday operations (VMs, networks, storage, roles)",
        "the corpus generator's background",
    ),
    benign(
        "Service principals doing every attack above",
        "the rule's scope (user principals)",
    ),
    benign(
        "Reads and deletes of extensions and run commands",
        "Microsoft.Compute and Microsoft.HybridCompute operations",
    ),
    benign(
        "Failed, started and accepted operations",
        "Activity Log schema (resultType Start, Accept, Failure)",
    ),
    benign(
        "Monitoring and security agents under any name, on every resource type",
        "Microsoft Learn: Azure Monitor agent, Defender for Endpoint, Dependency agent, Guest Configuration pages",
    ),
    benign(
        "A code-executing type from another publisher",
        "the publisher/type pair that keys a handler",
    ),
];

// The lists below are written from the sources named above, not from the coverage table.

/// (publisher, type) as Microsoft's pages spell them in their examples.
const DOC_HANDLERS: [(&str, &str); 13] = [
    ("Microsoft.Compute", "CustomScriptExtension"),
    ("Microsoft.Azure.Extensions", "CustomScript"),
    ("Microsoft.OSTCExtensions", "CustomScriptForLinux"),
    ("Microsoft.Compute", "VMAccessAgent"),
    ("Microsoft.OSTCExtensions", "VMAccessForLinux"),
    ("Microsoft.CPlat.Core", "RunCommandWindows"),
    ("Microsoft.CPlat.Core", "RunCommandLinux"),
    ("Microsoft.CPlat.Core", "RunCommandHandlerWindows"),
    ("Microsoft.CPlat.Core", "RunCommandHandlerLinux"),
    ("Microsoft.Powershell", "DSC"),
    ("Microsoft.OSTCExtensions", "DSCForLinux"),
    (
        "Microsoft.EnterpriseCloud.Monitoring",
        "MicrosoftMonitoringAgent",
    ),
    ("Microsoft.EnterpriseCloud.Monitoring", "OmsAgentForLinux"),
];

/// Instance names the portal and CLI give when the deployer does not choose one, in the case
/// the tools write them.
const TOOL_NAMES: [&str; 10] = [
    "enablevmaccess",
    "customScript",
    "CustomScript",
    "VMAccessForLinux",
    "Microsoft.Powershell.DSC",
    "DSCForLinux",
    "OmsAgentForLinux",
    "RunCommandHandlerWindows",
    "RunCommandHandlerLinux",
    "CustomScriptForLinux",
];

/// Instance names from Microsoft's examples that name no handler.
const CHOSEN_NAMES: [&str; 3] = ["config-app", "myCustomScript", "installIIS"];

/// Names an attacker would pick to look routine.
const INNOCUOUS_NAMES: [&str; 4] = ["bootstrap", "config", "agent-update", "init"];

/// Run Command operations: Elastic's two sibling rules, as they spell them.
pub const SIBLING_RUN_COMMAND_OPERATIONS: [&str; 4] = [
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION",
    "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/RUNCOMMAND/ACTION",
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
    "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
];

/// The Stratus Red Team sample's spelling of the classic Run Command.
const STRATUS_RUN_COMMAND: &str = "Microsoft.Compute/virtualMachines/runCommand/action";

/// (publisher, type) of monitoring and security agents.
const AGENTS: [(&str, &str); 8] = [
    ("Microsoft.Azure.Monitor", "AzureMonitorWindowsAgent"),
    ("Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent"),
    ("Microsoft.Azure.AzureDefenderForServers", "MDE.Windows"),
    ("Microsoft.Azure.AzureDefenderForServers", "MDE.Linux"),
    (
        "Microsoft.Azure.Monitoring.DependencyAgent",
        "DependencyAgentWindows",
    ),
    (
        "Microsoft.Azure.Monitoring.DependencyAgent",
        "DependencyAgentLinux",
    ),
    ("Microsoft.GuestConfiguration", "ConfigurationforWindows"),
    ("Microsoft.Azure.NetworkWatcher", "NetworkWatcherAgentLinux"),
];

/// Where an extension or a run command lives.
#[derive(Clone, Copy)]
enum Target {
    Vm,
    ScaleSet,
    ScaleSetInstance,
    Arc,
}

const TARGETS: [Target; 4] = [
    Target::Vm,
    Target::ScaleSet,
    Target::ScaleSetInstance,
    Target::Arc,
];

fn machine_id(e: &Event, target: Target) -> String {
    let vm = e
        .resource_id
        .split("/EXTENSIONS/")
        .next()
        .unwrap_or_default();
    match target {
        Target::Vm => vm.to_owned(),
        Target::ScaleSet => vm.replace("/VIRTUALMACHINES/", "/VIRTUALMACHINESCALESETS/"),
        Target::ScaleSetInstance => format!(
            "{}/VIRTUALMACHINES/7",
            vm.replace("/VIRTUALMACHINES/", "/VIRTUALMACHINESCALESETS/")
        ),
        Target::Arc => vm.replace(
            "/MICROSOFT.COMPUTE/VIRTUALMACHINES/",
            "/MICROSOFT.HYBRIDCOMPUTE/MACHINES/",
        ),
    }
}

fn extension_write(target: Target) -> &'static str {
    match target {
        Target::Vm => "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE",
        Target::ScaleSet => "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/EXTENSIONS/WRITE",
        Target::ScaleSetInstance => {
            "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/EXTENSIONS/WRITE"
        }
        Target::Arc => "MICROSOFT.HYBRIDCOMPUTE/MACHINES/EXTENSIONS/WRITE",
    }
}

fn request_body(publisher: &str, kind: &str) -> String {
    format!(
        r#"{{"location":"westeurope","properties":{{"publisher":"{publisher}","type":"{kind}","typeHandlerVersion":"1.0","autoUpgradeMinorVersion":true}}}}"#
    )
}

/// Makes `e` a successful user write of extension `name` on `target`.
fn with_extension(e: &mut Event, name: &str, target: Target) {
    e.resource_id = format!("{}/EXTENSIONS/{name}", machine_id(e, target));
    e.operation = extension_write(target).to_owned();
    e.principal_type = "User";
    e.outcome = "success";
    e.result_type = "Success";
    e.request_body = None;
}

/// Makes `e` a successful user run command: classic or managed, on a VM, a scale-set
/// instance or an Arc-enabled server.
fn with_run_command(e: &mut Event, rng: &mut Rng) {
    let which = rng.next() % 6;
    let (target, op) = match which {
        0..=3 => {
            let target = if which.is_multiple_of(2) {
                Target::Vm
            } else {
                Target::ScaleSetInstance
            };
            let op = SIBLING_RUN_COMMAND_OPERATIONS
                .get(which as usize)
                .copied()
                .unwrap_or(STRATUS_RUN_COMMAND);
            (target, op)
        }
        4 => (Target::Vm, STRATUS_RUN_COMMAND),
        _ => (
            Target::Arc,
            "Microsoft.HybridCompute/machines/runCommands/write",
        ),
    };
    let machine = machine_id(e, target);
    let managed = op.to_ascii_uppercase().ends_with("RUNCOMMANDS/WRITE");
    e.resource_id = if managed {
        format!("{machine}/RUNCOMMANDS/{}", rng.pick(&INNOCUOUS_NAMES))
    } else {
        machine
    };
    e.operation = op.to_owned();
    e.principal_type = "User";
    e.outcome = "success";
    e.result_type = "Success";
    e.request_body = managed
        .then(|| r#"{"location":"westeurope","properties":{"source":{"script":"id"}}}"#.to_owned());
}

fn pick_pair(rng: &mut Rng, list: &[(&'static str, &'static str)]) -> (&'static str, &'static str) {
    let i = (rng.next() % list.len() as u64) as usize;
    list.get(i)
        .copied()
        .unwrap_or(("Microsoft.Compute", "CustomScriptExtension"))
}

fn pick_target(rng: &mut Rng) -> Target {
    let i = (rng.next() % TARGETS.len() as u64) as usize;
    TARGETS.get(i).copied().unwrap_or(Target::Vm)
}

fn mixed_case(text: &str, rng: &mut Rng) -> String {
    if rng.next().is_multiple_of(2) {
        text.to_lowercase()
    } else {
        // Each path segment capitalised, as hand-typed or REST spellings often are.
        text.split('/')
            .map(|segment| {
                let lower = segment.to_lowercase();
                let mut chars = lower.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => String::new(),
                }
            })
            .collect::<Vec<String>>()
            .join("/")
    }
}

/// One of the rule's own instance names, as the rule spells it.
const RULE_NAMES: [&str; 5] = [
    "CUSTOMSCRIPTEXTENSION",
    "VMACCESSAGENT",
    "RUNCOMMANDWINDOWS",
    "RUNCOMMANDLINUX",
    "MICROSOFTMONITORINGAGENT",
];

/// A malicious event of category `which` (an index into [`EVASIONS`]).
fn adversarial_event(rng: &mut Rng, index: u64, which: usize) -> Event {
    // A background event (never one of the generator's own extension writes) to start from.
    let spec = CorpusSpec {
        true_positive_rate: 0.0,
        near_miss_rate: 0.0,
        ..CorpusSpec::default()
    };
    let mut e = event(rng, &spec, index);
    match which {
        0 => with_extension(&mut e, rng.pick(&RULE_NAMES), Target::Vm),
        1 => {
            with_extension(&mut e, rng.pick(&RULE_NAMES), Target::Vm);
            match rng.next() % 5 {
                0 => e.operation = mixed_case(&e.operation, rng),
                1 => e.resource_id = mixed_case(&e.resource_id, rng),
                2 => e.principal_type = "Group",
                3 => {
                    e.principal_type = "user";
                    e.outcome = "SUCCESS";
                    e.result_type = "SUCCESS";
                }
                _ => with_extension(&mut e, "DSC", Target::Vm),
            }
        }
        2 => {
            let (publisher, kind) = pick_pair(rng, &DOC_HANDLERS);
            let name = rng.pick(&INNOCUOUS_NAMES);
            with_extension(&mut e, name, pick_target(rng));
            e.request_body = Some(request_body(publisher, kind));
        }
        3 => with_extension(&mut e, rng.pick(&TOOL_NAMES), Target::Vm),
        4 => with_run_command(&mut e, rng),
        5 => {
            if rng.next().is_multiple_of(2) {
                with_run_command(&mut e, rng);
                let machine = machine_id(&e, Target::Arc);
                e.resource_id = format!("{machine}/RUNCOMMANDS/diag");
                e.operation = "MICROSOFT.HYBRIDCOMPUTE/MACHINES/RUNCOMMANDS/WRITE".to_owned();
            } else {
                let (publisher, kind) = pick_pair(
                    rng,
                    &[
                        ("Microsoft.Compute", "CustomScriptExtension"),
                        ("Microsoft.Azure.Extensions", "CustomScript"),
                    ],
                );
                with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), Target::Arc);
                e.request_body = Some(request_body(publisher, kind));
            }
        }
        6 => {
            let target = if rng.next().is_multiple_of(2) {
                Target::ScaleSet
            } else {
                Target::ScaleSetInstance
            };
            if rng.next().is_multiple_of(2) {
                with_extension(&mut e, rng.pick(&RULE_NAMES), target);
            } else {
                let (publisher, kind) = pick_pair(rng, &DOC_HANDLERS);
                with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), target);
                e.request_body = Some(request_body(publisher, kind));
            }
        }
        7 => with_extension(&mut e, rng.pick(&CHOSEN_NAMES), pick_target(rng)),
        _ => {
            let (publisher, kind) = pick_pair(rng, &DOC_HANDLERS);
            with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), pick_target(rng));
            e.request_body = Some(request_body(
                &publisher.to_lowercase(),
                &kind.to_lowercase(),
            ));
            e.resource_id = mixed_case(&e.resource_id, rng);
            e.operation = mixed_case(&e.operation, rng);
            e.principal_type = "Group";
        }
    }
    e
}

/// A benign event of kind `which` (an index into [`BENIGN`]).
fn benign_event(rng: &mut Rng, index: u64, which: usize) -> Event {
    let spec = CorpusSpec {
        true_positive_rate: 0.0,
        near_miss_rate: 0.0,
        ..CorpusSpec::default()
    };
    let mut e = event(rng, &spec, index);
    // Any attack (but the known limit), then made benign.
    let attack_kind = match rng.next() % 7 {
        7.. => 0,
        k => k as usize,
    };
    match which {
        0 => {}
        1 => {
            e = adversarial_event(rng, index, attack_kind);
            e.principal_type = "ServicePrincipal";
        }
        2 => {
            e = adversarial_event(rng, index, attack_kind);
            let verb = if rng.next().is_multiple_of(2) {
                "/READ"
            } else {
                "/DELETE"
            };
            let op = e.operation.to_ascii_uppercase();
            let base = op
                .strip_suffix("/WRITE")
                .or_else(|| op.strip_suffix("/RUNCOMMAND/ACTION"))
                .unwrap_or(&op);
            let base = if op.ends_with("/RUNCOMMAND/ACTION") {
                format!("{base}/RUNCOMMANDS")
            } else {
                base.to_owned()
            };
            e.operation = format!("{base}{verb}");
            e.request_body = None;
        }
        3 => {
            e = adversarial_event(rng, index, attack_kind);
            match rng.next() % 3 {
                0 => {
                    e.outcome = "failure";
                    e.result_type = "Failure";
                }
                1 => {
                    e.outcome = "unknown";
                    e.result_type = "Start";
                }
                _ => {
                    e.outcome = "unknown";
                    e.result_type = "Accept";
                }
            }
        }
        4 => {
            let (publisher, kind) = pick_pair(rng, &AGENTS);
            let target = pick_target(rng);
            // Its own name, a routine name, or a handler's default name.
            let name = match rng.next() % 3 {
                0 => kind.to_owned(),
                1 => rng.pick(&INNOCUOUS_NAMES).to_owned(),
                _ => rng.pick(&TOOL_NAMES).to_owned(),
            };
            with_extension(&mut e, &name, target);
            e.request_body = Some(request_body(publisher, kind));
            if rng.next().is_multiple_of(2) {
                e.resource_id = mixed_case(&e.resource_id, rng);
            }
        }
        _ => {
            let (_, kind) = pick_pair(rng, &DOC_HANDLERS);
            with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), pick_target(rng));
            e.request_body = Some(request_body("Contoso.Tools", kind));
        }
    }
    e
}

/// How many records of one kind each profile alerted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Records of this kind.
    pub records: u64,
    /// Alerts in the faithful profile.
    pub faithful: u64,
    /// Alerts in the hardened profile.
    pub hardened: u64,
}

/// Counts per kind, for one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeResult {
    /// The shape.
    pub shape: CorpusShape,
    /// Per category, in [`EVASIONS`] order.
    pub adversarial: Vec<Counts>,
    /// Per benign kind, in [`BENIGN`] order.
    pub benign: Vec<Counts>,
}

fn alerts(detector: &Detector, text: &[u8]) -> u64 {
    match detector.evaluate(text) {
        Ok(Outcome::Evaluated(list)) => list
            .iter()
            .filter(|e| matches!(e.verdict, Verdict::Alert(_)))
            .count() as u64,
        _ => 0,
    }
}

fn render(shape: CorpusShape, e: &Event) -> String {
    match shape {
        CorpusShape::Ecs => ecs(e),
        CorpusShape::Raw => raw(e),
    }
}

/// Generates `per_kind` records of every kind in both shapes and counts the alerts of both
/// profiles.
pub fn measure(per_kind: u64, seed: u64) -> Vec<ShapeResult> {
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    let mut out = Vec::new();
    for shape in [CorpusShape::Ecs, CorpusShape::Raw] {
        let mut rng = Rng(seed);
        let mut count = |make: &dyn Fn(&mut Rng, u64) -> Event| {
            let mut c = Counts::default();
            for i in 0..per_kind {
                let text = render(shape, &make(&mut rng, i));
                c.records += 1;
                c.faithful += alerts(&faithful, text.as_bytes());
                c.hardened += alerts(&hardened, text.as_bytes());
            }
            c
        };
        let adversarial = (0..EVASIONS.len())
            .map(|k| count(&|rng, i| adversarial_event(rng, i, k)))
            .collect();
        let benign = (0..BENIGN.len())
            .map(|k| count(&|rng, i| benign_event(rng, i, k)))
            .collect();
        out.push(ShapeResult {
            shape,
            adversarial,
            benign,
        });
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".to_owned();
    }
    format!("{:.0} %", 100.0 * part as f64 / whole as f64)
}

fn sum(list: &[Counts]) -> Counts {
    list.iter().fold(Counts::default(), |a, c| Counts {
        records: a.records + c.records,
        faithful: a.faithful + c.faithful,
        hardened: a.hardened + c.hardened,
    })
}

/// The table as Markdown: recall per attack category and false positives per benign kind, in
/// each shape and profile, with the source of each kind.
pub fn markdown(results: &[ShapeResult], per_kind: u64, seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`host-test efficacy --records {per_kind} --seed {seed}`: {per_kind} generated records \
         of each kind in each shape. Attack rows give recall (alerts / records); benign rows give \
         false positives (alerts / records).\n"
    );
    out.push_str(
        "| Kind | Source of its cases | ECS, faithful | ECS, hardened | raw, faithful | raw, hardened |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    let row = |out: &mut String, kind: &Kind, cells: Vec<Counts>| {
        let mut line = format!(
            "| {}: {} | {} |",
            if kind.malicious { "Attack" } else { "Benign" },
            kind.label,
            kind.source
        );
        for c in cells {
            if kind.malicious {
                let _ = write!(
                    line,
                    " {} ({}/{}) | {} ({}/{}) |",
                    percent(c.faithful, c.records),
                    c.faithful,
                    c.records,
                    percent(c.hardened, c.records),
                    c.hardened,
                    c.records
                );
            } else {
                let _ = write!(
                    line,
                    " {}/{} | {}/{} |",
                    c.faithful, c.records, c.hardened, c.records
                );
            }
        }
        out.push_str(&line);
        out.push('\n');
    };
    for (k, kind) in EVASIONS.iter().enumerate() {
        let cells = results
            .iter()
            .filter_map(|r| r.adversarial.get(k).copied())
            .collect();
        row(&mut out, kind, cells);
    }
    let mut recall = String::from("| **Recall**, all attacks | |");
    for r in results {
        let s = sum(&r.adversarial);
        let _ = write!(
            recall,
            " **{}** | **{}** |",
            percent(s.faithful, s.records),
            percent(s.hardened, s.records)
        );
    }
    out.push_str(&recall);
    out.push('\n');
    for (k, kind) in BENIGN.iter().enumerate() {
        let cells = results
            .iter()
            .filter_map(|r| r.benign.get(k).copied())
            .collect();
        row(&mut out, kind, cells);
    }
    let mut fp = String::from("| **False positives**, all benign | |");
    for r in results {
        let s = sum(&r.benign);
        let _ = write!(fp, " **{}** | **{}** |", s.faithful, s.hardened);
    }
    out.push_str(&fp);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of the known-limit category, which no stateless profile can catch.
    const KNOWN_LIMIT: usize = 7;

    #[test]
    fn the_hardened_profile_catches_every_covered_category_and_stays_quiet_on_benign_activity() {
        for r in measure(60, 3) {
            for (k, c) in r.adversarial.iter().enumerate() {
                if k == KNOWN_LIMIT {
                    assert_eq!(c.hardened, 0, "{:?}: {}", r.shape, EVASIONS[k].label);
                    continue;
                }
                assert_eq!(
                    c.hardened, c.records,
                    "{:?}: {}",
                    r.shape, EVASIONS[k].label
                );
            }
            for (k, c) in r.benign.iter().enumerate() {
                assert_eq!(c.hardened, 0, "{:?}: {}", r.shape, BENIGN[k].label);
                assert_eq!(c.faithful, 0, "{:?}: {}", r.shape, BENIGN[k].label);
            }
            // The control is caught by both; the faithful rule misses most of the channel.
            assert_eq!(r.adversarial[0].faithful, r.adversarial[0].records);
            assert!(sum(&r.adversarial).faithful < sum(&r.adversarial).records / 2);
        }
    }

    #[test]
    fn the_corpora_are_deterministic() {
        assert_eq!(measure(20, 9), measure(20, 9));
    }

    /// Elastic's sibling rules are the oracle for the Run Command operations: the corpus uses
    /// exactly the operations their queries name.
    #[test]
    fn run_command_operations_are_the_sibling_rules_own() {
        let Some(dir) = vmext_test_support::shared_path("data/azure-reference/detection-rules")
        else {
            return;
        };
        let mut named = Vec::new();
        for file in [
            "execution_compute_vm_command_executed.toml",
            "execution_azure_vm_managed_run_command_unusual_identity.toml",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let query = text
                .split("query = '''")
                .nth(1)
                .and_then(|rest| rest.split("'''").next())
                .unwrap();
            named.extend(quoted_values(query));
        }
        named.sort();
        let mut ours: Vec<String> = SIBLING_RUN_COMMAND_OPERATIONS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        ours.sort();
        assert_eq!(named, ours);
        assert_eq!(
            STRATUS_RUN_COMMAND.to_ascii_uppercase(),
            SIBLING_RUN_COMMAND_OPERATIONS[0]
        );
    }

    fn quoted_values(query: &str) -> Vec<String> {
        query
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// Every generated attack in the Run Command category is one the sibling rules' queries
    /// match (their operation clauses), or an Arc run command.
    #[test]
    fn run_command_cases_match_the_sibling_operations() {
        let mut rng = Rng(5);
        for i in 0..200 {
            let e = adversarial_event(&mut rng, i, 4);
            let op = e.operation.to_ascii_uppercase();
            assert!(
                SIBLING_RUN_COMMAND_OPERATIONS.contains(&op.as_str())
                    || op == "MICROSOFT.HYBRIDCOMPUTE/MACHINES/RUNCOMMANDS/WRITE",
                "{op}"
            );
        }
    }

    /// The README's table is the output of the documented command. Run with `VMEXT_BLESS=1`
    /// to rewrite it.
    #[test]
    fn readme_efficacy_table_is_current() {
        let (per_kind, seed) = (DEFAULT_RECORDS, DEFAULT_SEED);
        let table = markdown(&measure(per_kind, seed), per_kind, seed);
        vmext_test_support::check_readme_section(
            "<!-- efficacy:begin (generated by `host-test efficacy`) -->\n",
            "<!-- efficacy:end -->",
            &table,
            "cargo test -p vmext-host --lib efficacy",
        );
    }
}
