//! A deterministic corpus of Azure Activity Log records, for benchmarks and soak tests.
//!
//! Records look like real administrative activity: a mix of common operations by users,
//! groups and service principals, in ECS shape (≈1 KB, as Elastic stores them) or raw export
//! shape (≈1.8 KB). A configurable share are true positives for the seed rule, and a share are
//! near misses that carry the rule's operation name but fail another clause (a service
//! principal, a failure, a benign extension, a lower-case id). The same seed gives the same
//! bytes.

use std::fmt::Write as _;
use std::io::{self, Write};

/// Which shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusShape {
    /// ECS documents.
    Ecs,
    /// Raw Azure Activity Log export records, one per line.
    Raw,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorpusSpec {
    /// How many records.
    pub records: u64,
    /// The shape.
    pub shape: CorpusShape,
    /// Share of records the seed rule alerts on (0.001 = 0.1 %).
    pub true_positive_rate: f64,
    /// Share of records with the rule's operation name that must not alert.
    pub near_miss_rate: f64,
    /// The random seed.
    pub seed: u64,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec {
            records: 100_000,
            shape: CorpusShape::Ecs,
            true_positive_rate: 0.001,
            near_miss_rate: 0.05,
            seed: 1,
        }
    }
}

/// SplitMix64: small, fast and good enough to vary synthetic records deterministically.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = (self.next() % items.len().max(1) as u64) as usize;
        items.get(i).copied().unwrap_or_default()
    }

    pub(crate) fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(n);
        s
    }

    pub(crate) fn guid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-8{}-{}",
            h.get(0..8).unwrap_or_default(),
            h.get(8..12).unwrap_or_default(),
            h.get(13..16).unwrap_or_default(),
            h.get(17..20).unwrap_or_default(),
            h.get(20..32).unwrap_or_default()
        )
    }
}

const OPERATION: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE";

/// Everyday operations that make up most of an activity log.
const BACKGROUND_OPERATIONS: [&str; 10] = [
    "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION",
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
    "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
    "MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE",
    "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
    "MICROSOFT.KEYVAULT/VAULTS/WRITE",
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/START/ACTION",
    "MICROSOFT.COMPUTE/DISKS/WRITE",
    "MICROSOFT.WEB/SITES/CONFIG/WRITE",
    "MICROSOFT.NETWORK/PUBLICIPADDRESSES/DELETE",
];

const RISKY_EXTENSIONS: [&str; 6] = [
    "CUSTOMSCRIPTEXTENSION",
    "VMACCESSAGENT",
    "RUNCOMMANDWINDOWS",
    "RUNCOMMANDLINUX",
    "MICROSOFTMONITORINGAGENT",
    "DSC/CONFIG",
];

const BENIGN_EXTENSIONS: [&str; 4] = [
    "AZUREMONITORWINDOWSAGENT",
    "AZUREPOLICYFORWINDOWS",
    "MDE.WINDOWS",
    "NETWORKWATCHERAGENTWINDOWS",
];

/// One record's varying parts.
pub(crate) struct Event {
    pub(crate) operation: String,
    pub(crate) resource_id: String,
    pub(crate) principal_type: &'static str,
    pub(crate) outcome: &'static str,
    pub(crate) result_type: &'static str,
    pub(crate) time: String,
    pub(crate) caller: String,
    pub(crate) principal_id: String,
    pub(crate) correlation: String,
    pub(crate) subscription: String,
    pub(crate) tenant: String,
    pub(crate) user: String,
    /// The request body as a JSON object's text, when the event logs one.
    pub(crate) request_body: Option<String>,
}

pub(crate) fn event(rng: &mut Rng, spec: &CorpusSpec, index: u64) -> Event {
    let subscription = rng.guid();
    let group = format!("RG-{}", rng.pick(&["APP", "DATA", "OPS", "WEB", "SEC"]));
    let vm = format!("VM-{:04}", rng.next() % 5000);
    let base = format!(
        "/SUBSCRIPTIONS/{subscription}/RESOURCEGROUPS/{group}/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/{vm}"
    );
    let roll = rng.unit();
    let (operation, resource_id, principal_type, success) = if roll < spec.true_positive_rate {
        let ext = rng.pick(&RISKY_EXTENSIONS);
        (
            OPERATION.to_owned(),
            format!("{base}/EXTENSIONS/{ext}"),
            "User",
            true,
        )
    } else if roll < spec.true_positive_rate + spec.near_miss_rate {
        // The rule's operation, failing exactly one other clause.
        match rng.next() % 4 {
            0 => {
                let ext = rng.pick(&RISKY_EXTENSIONS);
                (
                    OPERATION.to_owned(),
                    format!("{base}/EXTENSIONS/{ext}"),
                    "ServicePrincipal",
                    true,
                )
            }
            1 => {
                let ext = rng.pick(&RISKY_EXTENSIONS);
                (
                    OPERATION.to_owned(),
                    format!("{base}/EXTENSIONS/{ext}"),
                    "User",
                    false,
                )
            }
            2 => {
                let ext = rng.pick(&BENIGN_EXTENSIONS);
                (
                    OPERATION.to_owned(),
                    format!("{base}/EXTENSIONS/{ext}"),
                    "User",
                    true,
                )
            }
            _ => (
                OPERATION.to_owned(),
                format!("{base}/extensions/CustomScriptExtension").to_lowercase(),
                "User",
                true,
            ),
        }
    } else {
        let op = rng.pick(&BACKGROUND_OPERATIONS);
        let principal = rng.pick(&["User", "ServicePrincipal", "ServicePrincipal", "Group"]);
        // One background event in ten fails.
        (
            op.to_owned(),
            base.clone(),
            principal,
            !rng.next().is_multiple_of(10),
        )
    };
    let seconds = 1_767_225_600 + index * 3 + rng.next() % 3; // from 2026-01-01
    Event {
        operation,
        resource_id,
        principal_type,
        outcome: if success { "success" } else { "failure" },
        result_type: if success { "Success" } else { "Failure" },
        time: vmext_engine::timestamp::format_unix(seconds as i64, (rng.next() % 1000) as u32),
        caller: format!("198.51.100.{}", rng.next() % 254 + 1),
        principal_id: rng.hex(32),
        correlation: rng.guid(),
        tenant: rng.guid(),
        subscription,
        user: format!(
            "{}@contoso.example",
            rng.pick(&["ana", "ben", "chen", "dara", "eli"])
        ),
        request_body: None,
    }
}

/// The ECS document of an event.
pub(crate) fn ecs(e: &Event) -> String {
    // Elastic's pipeline decodes the request body into an object.
    let body = e
        .request_body
        .as_ref()
        .map(|b| format!(r#","properties":{{"requestBody":{b}}}"#))
        .unwrap_or_default();
    format!(
        concat!(
            r#"{{"@timestamp":"{time}","data_stream":{{"dataset":"azure.activitylogs","namespace":"default","type":"logs"}},"#,
            r#""event":{{"action":"{op}","kind":"event","outcome":"{outcome}","type":["change"],"duration":0}},"#,
            r#""azure":{{"activitylogs":{{"category":"Administrative","event_category":"Administrative","operation_name":"{op}","#,
            r#""result_type":"{result}","result_signature":"Succeeded.","tenant_id":"{tenant}","#,
            r#""identity":{{"authorization":{{"evidence":{{"principal_id":"{pid}","principal_type":"{ptype}","role":"Contributor"}}}},"#,
            r#""claims_initiated_by_user":{{"name":"{user}"}}}}{body}}},"#,
            r#""resource":{{"id":"{id}","group":"RG"}},"subscription_id":"{sub}","correlation_id":"{corr}"}},"#,
            r#""source":{{"ip":"{ip}"}},"cloud":{{"provider":"azure"}}}}"#
        ),
        time = e.time,
        op = e.operation,
        outcome = e.outcome,
        result = e.result_type,
        tenant = e.tenant,
        id = e.resource_id,
        pid = e.principal_id,
        ptype = e.principal_type,
        sub = e.subscription,
        user = e.user,
        corr = e.correlation,
        ip = e.caller,
        body = body,
    )
}

/// The raw export record of an event.
pub(crate) fn raw(e: &Event) -> String {
    // Exports carry the request body as a JSON string under `properties.requestbody`.
    let body = e
        .request_body
        .as_ref()
        .map(|b| {
            let mut out = String::from(",\"requestbody\":");
            vmext_json::write_escaped_str(&mut out, b);
            out
        })
        .unwrap_or_default();
    format!(
        concat!(
            r#"{{"time":"{time}","resourceId":"{id}","operationName":"{op}","category":"Administrative","#,
            r#""resultType":"{result}","resultSignature":"Succeeded.","durationMs":"{dur}","callerIpAddress":"{ip}","#,
            r#""correlationId":"{corr}","level":"Information","location":"westeurope","tenantId":"{tenant}","#,
            r#""identity":{{"authorization":{{"scope":"{id}","action":"{op_lower}","#,
            r#""evidence":{{"role":"Contributor","roleAssignmentScope":"/subscriptions/{sub}","roleAssignmentId":"{pid}","roleDefinitionId":"b24988ac618042a0ab8820f7382dd24c","principalId":"{pid}","principalType":"{ptype}"}}}},"#,
            r#""claims":{{"aud":"https://management.core.windows.net/","iss":"https://sts.windows.net/{tenant}/","iat":"1767225600","nbf":"1767225600","exp":"1767229500","#,
            r#""http://schemas.microsoft.com/claims/authnmethodsreferences":"pwd,mfa","appid":"c44b4083-3bb0-49c1-b47d-974e53cbdf3c","#,
            r#""http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name":"{user}","http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":"{user}","#,
            r#""http://schemas.microsoft.com/identity/claims/objectidentifier":"{pid}","ipaddr":"{ip}","name":"Example User","ver":"1.0"}}}},"#,
            r#""properties":{{"statusCode":"Created","serviceRequestId":"{corr}","eventCategory":"Administrative","entity":"{id}","message":"{op_lower}","hierarchy":"{tenant}/{sub}"{body}}}}}"#
        ),
        time = e.time,
        id = e.resource_id,
        op = e.operation,
        op_lower = e.operation.to_lowercase(),
        result = e.result_type,
        dur = e.principal_id.len() * 7,
        ip = e.caller,
        corr = e.correlation,
        tenant = e.tenant,
        sub = e.subscription,
        pid = e.principal_id,
        ptype = e.principal_type,
        user = e.user,
        body = body,
    )
}

/// Writes the corpus as NDJSON to `out`.
pub fn generate(spec: &CorpusSpec, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng(spec.seed);
    let mut line = String::with_capacity(2048);
    for i in 0..spec.records {
        let e = event(&mut rng, spec, i);
        line.clear();
        line.push_str(&match spec.shape {
            CorpusShape::Ecs => ecs(&e),
            CorpusShape::Raw => raw(&e),
        });
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmext_engine::{Detector, Outcome, Verdict};

    fn corpus(shape: CorpusShape, records: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let spec = CorpusSpec {
            records,
            shape,
            true_positive_rate: 0.05,
            near_miss_rate: 0.2,
            seed: 7,
        };
        generate(&spec, &mut out).unwrap();
        out
    }

    #[test]
    fn corpus_is_deterministic_valid_and_alerts_at_the_requested_rate() {
        for shape in [CorpusShape::Ecs, CorpusShape::Raw] {
            let a = corpus(shape, 2000);
            assert_eq!(a, corpus(shape, 2000));
            let detector = Detector::seed();
            let (mut alerts, mut lines, mut bytes) = (0, 0, 0);
            for line in a.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines += 1;
                bytes += line.len();
                vmext_json::parse(line).unwrap();
                if let Outcome::Evaluated(r) = detector.evaluate(line).unwrap() {
                    alerts += r
                        .iter()
                        .filter(|e| matches!(e.verdict, Verdict::Alert(_)))
                        .count();
                }
            }
            assert_eq!(lines, 2000);
            // 5 % requested: 100 expected, allow sampling noise.
            assert!((60..140).contains(&alerts), "{shape:?}: {alerts} alerts");
            let mean = bytes / lines;
            let expected = match shape {
                CorpusShape::Ecs => 900..1300,
                CorpusShape::Raw => 1600..2100,
            };
            assert!(
                expected.contains(&mean),
                "{shape:?}: mean record {mean} bytes"
            );
        }
    }
}
