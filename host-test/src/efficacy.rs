//! Detection efficacy: recall on generated evasions, false positives on generated benign
//! activity, for each profile and each record shape.
//!
//! The **adversarial** corpus holds only malicious events: a user (or a group member)
//! successfully deploying a high-risk extension, each written with one of the evasions the
//! hardened profile closes, plus a plain control. The **benign** corpus holds ordinary
//! activity and known-good automation that must never alert. Both are generated from a seed,
//! so the table is reproducible; `vmext-detect efficacy` prints it and a test keeps the
//! README's copy current.

use std::fmt::Write as _;

use vmext_engine::{Detector, Outcome, ProfileName, Verdict};

use crate::generate::{CorpusShape, CorpusSpec, Event, Rng, ecs, event, raw};

/// Records of each kind per shape, by default.
pub const DEFAULT_RECORDS: u64 = 500;
/// The corpora's seed, by default.
pub const DEFAULT_SEED: u64 = 1;

/// One kind of generated event, with whether it is malicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Short label for the table.
    pub label: &'static str,
    /// Malicious (belongs to the adversarial corpus) or benign.
    pub malicious: bool,
}

/// The adversarial kinds, in table order.
pub const EVASIONS: [Kind; 10] = [
    Kind {
        label: "Control: the deployment as the rule expects it",
        malicious: true,
    },
    Kind {
        label: "Lower-case operation name",
        malicious: true,
    },
    Kind {
        label: "Lower- or mixed-case resource id",
        malicious: true,
    },
    Kind {
        label: "Principal type `user`, outcome `SUCCESS`",
        malicious: true,
    },
    Kind {
        label: "Innocuous instance name; the type is in the request body",
        malicious: true,
    },
    Kind {
        label: "Linux handler under its default instance name",
        malicious: true,
    },
    Kind {
        label: "DSC instance named DSC (id ends in /EXTENSIONS/DSC)",
        malicious: true,
    },
    Kind {
        label: "A user acting through a group assignment",
        malicious: true,
    },
    Kind {
        label: "Scale set extension write",
        malicious: true,
    },
    Kind {
        label: "All of the above at once",
        malicious: true,
    },
];

/// The benign kinds, in table order.
pub const BENIGN: [Kind; 7] = [
    Kind {
        label: "Everyday operations (VMs, networks, storage, roles)",
        malicious: false,
    },
    Kind {
        label: "Benign extensions by users, any case, VMs and scale sets",
        malicious: false,
    },
    Kind {
        label: "Benign handler behind an innocuous instance name",
        malicious: false,
    },
    Kind {
        label: "Automation: service principals deploying high-risk extensions",
        malicious: false,
    },
    Kind {
        label: "Failed high-risk deployments",
        malicious: false,
    },
    Kind {
        label: "Start and Accept events of high-risk deployments",
        malicious: false,
    },
    Kind {
        label: "High-risk extensions deleted",
        malicious: false,
    },
];

/// Windows and Linux handlers of the extension families the rule is about, as `(type, the
/// default instance name's upper-case form)`.
const HANDLERS: [(&str, &str); 9] = [
    ("CustomScriptExtension", "CUSTOMSCRIPTEXTENSION"),
    ("CustomScript", "CUSTOMSCRIPT"),
    ("VMAccessAgent", "VMACCESSAGENT"),
    ("VMAccessForLinux", "VMACCESSFORLINUX"),
    ("RunCommandWindows", "RUNCOMMANDWINDOWS"),
    ("RunCommandLinux", "RUNCOMMANDLINUX"),
    ("DSC", "DSC"),
    ("MicrosoftMonitoringAgent", "MICROSOFTMONITORINGAGENT"),
    ("OmsAgentForLinux", "OMSAGENTFORLINUX"),
];

const LINUX_DEFAULTS: [&str; 4] = [
    "CUSTOMSCRIPT",
    "VMACCESSFORLINUX",
    "OMSAGENTFORLINUX",
    "CUSTOMSCRIPTFORLINUX",
];

const BENIGN_HANDLERS: [&str; 5] = [
    "AzureMonitorWindowsAgent",
    "AzurePolicyforLinux",
    "MDE.Windows",
    "NetworkWatcherAgentWindows",
    "IaaSAntimalware",
];

const INNOCUOUS_NAMES: [&str; 4] = ["bootstrap", "config", "agent-update", "init"];

const VM_WRITE: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE";
const VMSS_WRITE: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/EXTENSIONS/WRITE";

fn request_body(handler: &str) -> String {
    format!(
        r#"{{"location":"westeurope","properties":{{"publisher":"Microsoft.Example","type":"{handler}","typeHandlerVersion":"1.0","autoUpgradeMinorVersion":true}}}}"#
    )
}

/// Replaces the last segment(s) of a VM's id with `extensions/NAME`, optionally on a scale set.
fn with_extension(e: &mut Event, name: &str, scale_set: bool) {
    let vm = e
        .resource_id
        .split("/EXTENSIONS/")
        .next()
        .unwrap_or_default()
        .to_owned();
    let vm = if scale_set {
        vm.replace("/VIRTUALMACHINES/", "/VIRTUALMACHINESCALESETS/")
    } else {
        vm
    };
    e.resource_id = format!("{vm}/EXTENSIONS/{name}");
    e.operation = if scale_set { VMSS_WRITE } else { VM_WRITE }.to_owned();
    e.principal_type = "User";
    e.outcome = "success";
    e.result_type = "Success";
    e.request_body = None;
}

fn pick_handler(rng: &mut Rng) -> (&'static str, &'static str) {
    let i = (rng.next() % HANDLERS.len() as u64) as usize;
    HANDLERS
        .get(i)
        .copied()
        .unwrap_or(("CustomScriptExtension", "CUSTOMSCRIPTEXTENSION"))
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

/// A malicious event with evasion `which` (an index into [`EVASIONS`]).
fn adversarial_event(rng: &mut Rng, index: u64, which: usize) -> Event {
    let mut e = event(rng, &CorpusSpec::default(), index);
    let (handler, default_name) = pick_handler(rng);
    // A default name the seed rule's patterns know, for the evasions that change another field.
    let known = if default_name == "DSC" || LINUX_DEFAULTS.contains(&default_name) {
        "CUSTOMSCRIPTEXTENSION"
    } else {
        default_name
    };
    match which {
        0 => with_extension(&mut e, known, false),
        1 => {
            with_extension(&mut e, known, false);
            e.operation = mixed_case(&e.operation, rng);
        }
        2 => {
            with_extension(&mut e, known, false);
            e.resource_id = mixed_case(&e.resource_id, rng);
        }
        3 => {
            with_extension(&mut e, known, false);
            e.principal_type = "user";
            e.outcome = "SUCCESS";
            e.result_type = "SUCCESS";
        }
        4 => {
            with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), false);
            e.request_body = Some(request_body(handler));
        }
        5 => with_extension(&mut e, rng.pick(&LINUX_DEFAULTS), false),
        6 => with_extension(&mut e, "DSC", false),
        7 => {
            with_extension(&mut e, known, false);
            e.principal_type = "Group";
        }
        8 => with_extension(&mut e, known, true),
        _ => {
            with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), true);
            e.request_body = Some(request_body(handler));
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
    let (_, risky) = pick_handler(rng);
    let risky = if risky == "DSC" { "DSC/CONFIG" } else { risky };
    match which {
        0 => {}
        1 => {
            let name = rng.pick(&BENIGN_HANDLERS).to_uppercase();
            let scale_set = rng.next().is_multiple_of(3);
            with_extension(&mut e, &name, scale_set);
            if rng.next().is_multiple_of(2) {
                e.resource_id = mixed_case(&e.resource_id, rng);
                e.operation = mixed_case(&e.operation, rng);
            }
        }
        2 => {
            with_extension(&mut e, rng.pick(&INNOCUOUS_NAMES), false);
            e.request_body = Some(request_body(rng.pick(&BENIGN_HANDLERS)));
        }
        3 => {
            with_extension(&mut e, risky, rng.next().is_multiple_of(4));
            e.principal_type = "ServicePrincipal";
            if rng.next().is_multiple_of(2) {
                e.resource_id = mixed_case(&e.resource_id, rng);
            }
        }
        4 => {
            with_extension(&mut e, risky, false);
            e.outcome = "failure";
            e.result_type = "Failure";
        }
        5 => {
            with_extension(&mut e, risky, false);
            e.outcome = "unknown";
            e.result_type = if rng.next().is_multiple_of(2) {
                "Start"
            } else {
                "Accept"
            };
        }
        _ => {
            with_extension(&mut e, risky, false);
            e.operation = "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/DELETE".to_owned();
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
    /// Per evasion, in [`EVASIONS`] order.
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

/// Generates `per_kind` records of every kind in both shapes and counts the alerts of both
/// profiles.
pub fn measure(per_kind: u64, seed: u64) -> Vec<ShapeResult> {
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    let mut out = Vec::new();
    for shape in [CorpusShape::Ecs, CorpusShape::Raw] {
        let render = |e: &Event| match shape {
            CorpusShape::Ecs => ecs(e),
            CorpusShape::Raw => raw(e),
        };
        let mut rng = Rng(seed);
        let mut count = |make: &dyn Fn(&mut Rng, u64) -> Event| {
            let mut c = Counts::default();
            for i in 0..per_kind {
                let text = render(&make(&mut rng, i));
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

/// The table as Markdown: per kind, alerts over records in each shape and profile.
pub fn markdown(results: &[ShapeResult], per_kind: u64, seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`vmext-detect efficacy --records {per_kind} --seed {seed}`: {per_kind} generated records \
         of each kind in each shape. Cells are alerts / records.\n"
    );
    out.push_str("| Corpus | ECS, faithful | ECS, hardened | raw, faithful | raw, hardened |\n");
    out.push_str("|---|---|---|---|---|\n");
    let row = |out: &mut String, label: &str, cells: Vec<Counts>| {
        let mut line = format!("| {label} |");
        for c in cells {
            let _ = write!(
                line,
                " {}/{} | {}/{} |",
                c.faithful, c.records, c.hardened, c.records
            );
        }
        out.push_str(&line);
        out.push('\n');
    };
    for (k, kind) in EVASIONS.iter().enumerate() {
        let cells = results
            .iter()
            .filter_map(|r| r.adversarial.get(k).copied())
            .collect();
        row(&mut out, &format!("Adversarial: {}", kind.label), cells);
    }
    let mut recall = String::from("| **Recall** (adversarial) |");
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
        row(&mut out, &format!("Benign: {}", kind.label), cells);
    }
    let mut fp = String::from("| **False positives** (benign) |");
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

    #[test]
    fn the_hardened_profile_catches_every_evasion_and_stays_quiet_on_benign_activity() {
        for r in measure(60, 3) {
            for (k, c) in r.adversarial.iter().enumerate() {
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
            // The control is caught by both; the faithful rule misses most evasions.
            assert_eq!(r.adversarial[0].faithful, r.adversarial[0].records);
            assert!(sum(&r.adversarial).faithful < sum(&r.adversarial).records / 2);
        }
    }

    #[test]
    fn the_corpora_are_deterministic() {
        assert_eq!(measure(20, 9), measure(20, 9));
    }

    /// The README's table is the output of the documented command. Run with `VMEXT_BLESS=1`
    /// to rewrite it.
    #[test]
    fn readme_efficacy_table_is_current() {
        let (per_kind, seed) = (DEFAULT_RECORDS, DEFAULT_SEED);
        let table = markdown(&measure(per_kind, seed), per_kind, seed);
        vmext_test_support::check_readme_section(
            "<!-- efficacy:begin (generated by `vmext-detect efficacy`) -->\n",
            "<!-- efficacy:end -->",
            &table,
            "cargo test -p vmext-host --lib efficacy",
        );
    }
}
