//! Azure Activity Log records in their two shapes, and the ECS view a rule is evaluated on.
//!
//! Rules are written against the ECS documents Elastic's azure integration stores. A pipeline
//! usually carries the raw export instead. [`ecs_view`] turns a raw record into the ECS fields
//! Elastic's activity-logs ingest pipeline would write (`packages/azure/data_stream/activitylogs`
//! in elastic/integrations), so the same rule gives the verdict Elastic would give after ingest.
//! What the pipeline does and this view copies:
//!
//! * the record is parsed into `azure.activitylogs.*`, and named fields are then moved:
//!   `operationName` → `azure.activitylogs.operation_name` (case kept, copied to `event.action`),
//!   `resourceId` → `azure.resource.id` (case kept) and its parts, `resultType` →
//!   `azure.activitylogs.result_type`, evidence keys to snake case, claims keys with `.` → `_`;
//! * `event.outcome` is `resultType` lower-cased when that is `success` or `failure`, otherwise
//!   `properties.result` when it is `success`, `failure` or `unknown`; otherwise absent;
//! * `time` → `@timestamp` (UTC, milliseconds, see [`crate::timestamp`]);
//! * GeoIP fields are not produced: a filter has no GeoIP database.
//!
//! Which key goes where is declared once, in the [`mapping`] table; [`ecs_view`] applies it,
//! [`raw_presence`] reads the prefilter's facts from it, and the VRL generator writes it in VRL.

use std::borrow::Cow;
use std::net::IpAddr;

use vmext_json::{Number, Value};
use vmext_kql::Presence;

pub mod mapping;

use mapping::{
    ACTIVITY_PREFIX, CLAIMS_PREFIX, EVIDENCE_RENAMES, FULLNAME_CLAIM, Transform, USER_CLAIMS, Write,
};

/// The shape a record arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An ECS document, as Elastic stores it.
    Ecs,
    /// A raw Azure Activity Log export record (Event Hub or storage account).
    AzureRaw,
}

impl Shape {
    /// A stable name for output: `ecs` or `azure-raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Ecs => "ecs",
            Shape::AzureRaw => "azure-raw",
        }
    }
}

/// The dataset of Azure Activity Log documents.
pub const ACTIVITY_LOGS_DATASET: &str = "azure.activitylogs";

/// The categories Elastic's azure integration routes to `azure.activitylogs` (exact,
/// case-sensitive: its routing rules compare the `category` string as it is).
pub const ACTIVITY_LOG_CATEGORIES: [&str; 8] = [
    "Administrative",
    "Security",
    "ServiceHealth",
    "Alert",
    "Recommendation",
    "Policy",
    "Autoscale",
    "ResourceHealth",
];

/// Top-level keys that mark a raw export record.
pub const RAW_MARKERS: [&str; 6] = [
    "operationName",
    "resourceId",
    "resultType",
    "category",
    "callerIpAddress",
    "correlationId",
];

/// Top-level keys that mark an ECS document (plain, or as the prefix of a dotted key).
pub const ECS_MARKERS: [&str; 4] = ["azure", "@timestamp", "data_stream", "event"];

/// Decides a record's shape: raw when it has a raw marker key at the top level and no ECS
/// marker (`azure`, `@timestamp`, `data_stream`, `event`, plain or as a dotted prefix).
pub fn shape_of(record: &Value<'_>) -> Shape {
    let Some(members) = record.as_object() else {
        return Shape::Ecs;
    };
    let is_ecs_key = |k: &str| {
        ECS_MARKERS
            .iter()
            .any(|m| k == *m || k.strip_prefix(m).is_some_and(|r| r.starts_with('.')))
    };
    if members.iter().any(|(k, _)| is_ecs_key(k)) {
        return Shape::Ecs;
    }
    if members
        .iter()
        .any(|(k, _)| RAW_MARKERS.contains(&k.as_ref()))
    {
        Shape::AzureRaw
    } else {
        Shape::Ecs
    }
}

/// The members of a `{"records":[…]}` envelope, mutably.
pub fn envelope_records_mut<'v, 'a>(doc: &'v mut Value<'a>) -> Option<&'v mut Vec<Value<'a>>> {
    match doc {
        Value::Object(members) => match members.as_mut_slice() {
            [(key, Value::Array(items))] if key == "records" => Some(items),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a raw record's `category` is one Elastic routes to the activity-logs dataset.
pub fn is_activity_log_category(raw: &Value<'_>) -> bool {
    raw.get("category")
        .and_then(Value::as_str)
        .is_some_and(|c| ACTIVITY_LOG_CATEGORIES.contains(&c))
}

/// How a field of the ECS view relates to a raw record's text, for the literal prefilter: as
/// the [`mapping`] table declares it.
pub fn raw_presence(field: &str) -> Presence {
    mapping::presence_of(field)
}

/// How a field relates to an ECS document's text: as written, except the dataset, which is
/// inferred when the document does not carry it.
pub fn ecs_presence(field: &str) -> Presence {
    if field == "data_stream.dataset" {
        Presence::Opaque
    } else {
        Presence::Verbatim
    }
}

// ---------------------------------------------------------------------------------------------
// Building documents

/// A value that borrows all its text from `v` (a copy of its structure, made without
/// recursion; the view is built only for records past the prefilter).
pub(crate) fn borrowed<'v>(v: &'v Value<'_>) -> Value<'v> {
    v.borrowed()
}

/// Sets `path` (dotted) in an object, creating intermediate objects. An existing leaf at the
/// path is replaced. New keys borrow their text from `path` (the mapping's and the rule's
/// paths, a record's own keys), so building a view allocates no key.
pub(crate) fn set_path<'a>(
    members: &mut Vec<(Cow<'a, str>, Value<'a>)>,
    path: &'a str,
    value: Value<'a>,
) {
    set_path_with(members, path, Cow::Borrowed, value);
}

/// [`set_path`] for a path made for the occasion: new keys own a copy of their text.
fn set_formatted_path<'a>(
    members: &mut Vec<(Cow<'a, str>, Value<'a>)>,
    path: &str,
    value: Value<'a>,
) {
    set_path_with(members, path, |s| Cow::Owned(s.to_owned()), value);
}

fn set_path_with<'a, 'p>(
    members: &mut Vec<(Cow<'a, str>, Value<'a>)>,
    path: &'p str,
    key: impl Fn(&'p str) -> Cow<'a, str>,
    value: Value<'a>,
) {
    let mut current = members;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let index = match current.iter().position(|(k, _)| k == segment) {
            Some(i) => i,
            None => {
                current.push((key(segment), Value::Object(Vec::new())));
                current.len() - 1
            }
        };
        let Some((_, slot)) = current.get_mut(index) else {
            return;
        };
        if last {
            *slot = value;
            return;
        }
        if !matches!(slot, Value::Object(_)) {
            *slot = Value::Object(Vec::new());
        }
        let Value::Object(next) = slot else { return };
        current = next;
    }
}

/// The ECS document Elastic's azure pipeline would store for a raw record: the [`mapping`]
/// table applied key by key, then its record-level writes.
pub fn ecs_view<'v>(raw: &'v Value<'_>) -> Value<'v> {
    let mut doc: Vec<(Cow<'v, str>, Value<'v>)> = Vec::new();
    let Some(members) = raw.as_object() else {
        return Value::Object(doc);
    };
    let mut activity: Vec<(Cow<'v, str>, Value<'v>)> = Vec::new();
    for (key, value) in members {
        let key = key.as_ref();
        let Some(entry) = mapping::raw_key(key) else {
            // `mapping::OTHER_KEYS`: under the activity-log object, split at the key's dots.
            set_path(&mut activity, key, borrowed(value));
            continue;
        };
        for write in entry.writes.iter().filter(|w| w.guard.admits(value)) {
            apply(write, value, raw, &mut doc, &mut activity);
        }
    }
    // The activity-log object joins the document after the last record-level write into it.
    let attach_at = mapping::RECORD_WRITES
        .iter()
        .rposition(|w| w.fields.iter().all(|f| f.activity_path().is_some()))
        .map_or(0, |i| i + 1);
    let (into_activity, after) = mapping::RECORD_WRITES
        .split_at_checked(attach_at)
        .unwrap_or((&mapping::RECORD_WRITES, &[]));
    for write in into_activity {
        apply(write, raw, raw, &mut doc, &mut activity);
    }
    set_path(&mut doc, ACTIVITY_PREFIX, Value::Object(activity));
    for write in after {
        apply(write, raw, raw, &mut doc, &mut Vec::new());
    }
    Value::Object(doc)
}

/// Applies one write of the [`mapping`] table: `value` is the raw key's value (the record for
/// record-level writes); fields under [`ACTIVITY_PREFIX`] go to `activity`, others to `doc`.
fn apply<'v>(
    write: &Write,
    value: &'v Value<'_>,
    raw: &'v Value<'_>,
    doc: &mut Vec<(Cow<'v, str>, Value<'v>)>,
    activity: &mut Vec<(Cow<'v, str>, Value<'v>)>,
) {
    match write.transform {
        Transform::Copy => {
            for field in write.fields {
                match field.activity_path() {
                    Some(path) => set_path(activity, path, borrowed(value)),
                    None => set_path(doc, field.path, borrowed(value)),
                }
            }
        }
        Transform::Timestamp => {
            if let Some(ts) = value.as_str().and_then(crate::timestamp::normalise) {
                set_path(doc, "@timestamp", Value::string(ts));
            }
        }
        Transform::ResourceId => {
            set_path(doc, "azure.resource.id", borrowed(value));
            if let Some(id) = value.as_str() {
                for (field, part) in resource_id_parts(id) {
                    set_path(doc, field, Value::String(Cow::Borrowed(part)));
                }
            }
        }
        Transform::CallerIp => match value.as_str().map(|s| (s, s.parse::<IpAddr>())) {
            Some((_, Ok(ip))) => {
                let ip = Value::string(ip.to_string());
                set_path(doc, "source.ip", ip.clone());
                set_path(doc, "client.ip", ip.clone());
                set_path(doc, "related.ip", Value::Array(vec![ip]));
            }
            _ => set_path(doc, "source.address", borrowed(value)),
        },
        Transform::DurationNanos => {
            let ms = match value {
                Value::Number(n) => n.as_str().parse::<i128>().ok(),
                Value::String(s) => s.trim().parse::<i128>().ok(),
                _ => None,
            };
            if let Some(ns) = ms.and_then(|ms| ms.checked_mul(1_000_000)) {
                set_path(doc, "event.duration", Value::Number(Number::from_i128(ns)));
            }
        }
        Transform::EventType => {
            if let Some(kind) = value.as_str().and_then(event_type_of_category) {
                set_path(doc, "event.type", Value::Array(vec![Value::string(kind)]));
            }
        }
        Transform::Identity => identity(value, activity),
        Transform::Properties => properties(value, activity, doc),
        // Written by `ecs_view` itself, which knows the key.
        Transform::Activity => {}
        Transform::Outcome => {
            if let Some(outcome) = outcome(raw) {
                set_path(doc, "event.outcome", Value::string(outcome));
            }
        }
        Transform::DefaultEventCategory => {
            if activity.iter().all(|(k, _)| k != "event_category") {
                let category = match raw.get("properties").and_then(|p| p.get("policies")) {
                    Some(_) => "Policy",
                    None => "Administrative",
                };
                set_path(
                    activity,
                    "event_category",
                    Value::String(Cow::Borrowed(category)),
                );
            }
        }
        Transform::Fixed => {
            for field in write.fields {
                if let Some(fixed) = field.value {
                    set_path(doc, field.path, Value::String(Cow::Borrowed(fixed)));
                }
            }
        }
        // Added by the detector, as a dotted top-level key, for routed categories only.
        Transform::Dataset => {}
    }
}

/// `event.outcome` from `resultType`, else from `properties.result`.
fn outcome(raw: &Value<'_>) -> Option<&'static str> {
    let from_result_type = raw.get("resultType").and_then(Value::as_str).and_then(|r| {
        match r.to_lowercase().as_str() {
            "success" => Some("success"),
            "failure" => Some("failure"),
            _ => None,
        }
    });
    from_result_type.or_else(|| {
        match raw
            .get("properties")
            .and_then(|p| p.get("result"))
            .and_then(Value::as_str)
        {
            Some("success") => Some("success"),
            Some("failure") => Some("failure"),
            Some("unknown") => Some("unknown"),
            _ => None,
        }
    })
}

/// `event.type` from the lower-cased category.
fn event_type_of_category(category: &str) -> Option<&'static str> {
    match category.to_lowercase().as_str() {
        "write" | "action" => Some("change"),
        "read" => Some("access"),
        "delete" => Some("deletion"),
        _ => None,
    }
}

fn identity<'v>(identity: &'v Value<'_>, activity: &mut Vec<(Cow<'v, str>, Value<'v>)>) {
    let Some(members) = identity.as_object() else {
        return;
    };
    for (key, value) in members {
        match key.as_ref() {
            "authorization" => {
                let Some(auth) = value.as_object() else {
                    set_path(activity, "identity.authorization", borrowed(value));
                    continue;
                };
                for (k, v) in auth {
                    if k == "evidence" {
                        let Some(evidence) = v.as_object() else {
                            set_path(activity, "identity.authorization.evidence", borrowed(v));
                            continue;
                        };
                        for (ek, ev) in evidence {
                            let name = EVIDENCE_RENAMES
                                .iter()
                                .find(|(from, _)| from == ek)
                                .map_or(ek.as_ref(), |(_, to)| to);
                            set_formatted_path(
                                activity,
                                &format!("identity.authorization.evidence.{name}"),
                                borrowed(ev),
                            );
                        }
                    } else {
                        set_formatted_path(
                            activity,
                            &format!("identity.authorization.{k}"),
                            borrowed(v),
                        );
                    }
                }
            }
            "claims" => {
                let Some(claims) = value.as_object() else {
                    set_path(activity, "identity.claims", borrowed(value));
                    continue;
                };
                let mut kept: Vec<(Cow<'v, str>, Value<'v>)> = Vec::new();
                let mut by_user = false;
                for (ck, cv) in claims {
                    if let Some(part) = ck
                        .strip_prefix(CLAIMS_PREFIX)
                        .filter(|p| USER_CLAIMS.contains(p))
                    {
                        by_user |= part == "name";
                        set_formatted_path(
                            activity,
                            &format!("identity.claims_initiated_by_user.{part}"),
                            borrowed(cv),
                        );
                    }
                    if ck == FULLNAME_CLAIM {
                        // Renamed to `fullname`, not kept among the claims.
                        set_path(
                            activity,
                            "identity.claims_initiated_by_user.fullname",
                            borrowed(cv),
                        );
                        continue;
                    }
                    // Dots in claim keys become `_` (the key is one field, not a path).
                    kept.push((Cow::Owned(ck.replace('.', "_")), borrowed(cv)));
                }
                set_path(activity, "identity.claims", Value::Object(kept));
                if by_user {
                    set_path(
                        activity,
                        "identity.claims_initiated_by_user.schema",
                        Value::String(Cow::Borrowed(CLAIMS_PREFIX.trim_end_matches('/'))),
                    );
                }
            }
            other => set_formatted_path(activity, &format!("identity.{other}"), borrowed(value)),
        }
    }
}

/// `properties`: decoded when it is a JSON string; a few keys renamed or moved.
///
/// Copied with owned text because a decoded string's values live only as long as the decoding.
fn properties<'v>(
    value: &'v Value<'_>,
    activity: &mut Vec<(Cow<'v, str>, Value<'v>)>,
    doc: &mut Vec<(Cow<'v, str>, Value<'v>)>,
) {
    let decoded;
    let value = match value {
        Value::String(s) => match vmext_json::parse(s.as_bytes()) {
            Ok(v @ Value::Object(_)) => {
                decoded = v;
                &decoded
            }
            _ => {
                set_path(activity, "properties", borrowed(value));
                return;
            }
        },
        other => other,
    };
    let Some(members) = value.as_object() else {
        set_path(activity, "properties", owned(value));
        return;
    };
    let mut kept: Vec<(Cow<'v, str>, Value<'v>)> = Vec::new();
    for (key, v) in members {
        match key.as_ref() {
            "eventCategory" => set_path(activity, "event_category", owned(v)),
            "statusMessage" => set_path(doc, "message", owned(v)),
            "serviceRequestId" => kept.push((Cow::Borrowed("service_request_id"), owned(v))),
            "statusCode" => kept.push((Cow::Borrowed("status_code"), owned(v))),
            k @ ("requestBody" | "responseBody") => {
                let body = match v {
                    Value::String(s) => match vmext_json::parse(s.as_bytes()) {
                        Ok(parsed) => owned(&parsed),
                        Err(_) => owned(v),
                    },
                    other => owned(other),
                };
                kept.push((Cow::Owned(k.to_owned()), body));
            }
            k => kept.push((Cow::Owned(k.to_owned()), owned(v))),
        }
    }
    set_path(activity, "properties", Value::Object(kept));
}

/// A copy that owns its text, made without recursion: for values decoded from a string inside
/// the record, which live only as long as this function's decoding.
pub(crate) fn owned(v: &Value<'_>) -> Value<'static> {
    v.to_static()
}

/// The parts Elastic's pipeline reads out of a resource id, as (ECS field, text) pairs.
///
/// The pipeline tries patterns in order and the first that matches wins; parts keep their case.
/// Keyword segments (`subscriptions`, `resourceGroups`, `providers`, …) are compared without
/// regard to case, as the newer pipeline generation does (its mixed-case resource-id test);
/// older generations knew only the all-capitals and canonical spellings and produced no parts
/// for other casings. The subscription must be a GUID.
pub fn resource_id_parts(id: &str) -> Vec<(&'static str, &str)> {
    let segments: Vec<&str> = id.split('/').collect();
    let seg = |i: usize| segments.get(i).copied();
    let is = |i: usize, word: &str| seg(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    // The text from segment `start` to the end of the id.
    let rest_from = |start: usize| -> Option<&str> {
        let offset: usize = segments.iter().take(start).map(|s| s.len() + 1).sum();
        id.get(offset..).filter(|r| !r.is_empty())
    };
    if seg(0) != Some("") {
        return Vec::new();
    }
    // `/tenants/<id>/providers/<provider>`: a tenant-level resource.
    if is(1, "tenants") && is(3, "providers") {
        return rest_from(4)
            .map(|p| vec![("azure.resource.provider", p)])
            .unwrap_or_default();
    }
    let Some(sub) = seg(2).filter(|s| is(1, "subscriptions") && is_guid(s)) else {
        return Vec::new();
    };
    let mut out = vec![("azure.subscription_id", sub)];
    if is(3, "providers") {
        // A subscription-level provider.
        out.extend(rest_from(4).map(|p| ("azure.resource.provider", p)));
        return out;
    }
    let Some(group) = seg(4).filter(|g| is(3, "resourceGroups") && !g.is_empty()) else {
        return out;
    };
    out.push(("azure.resource.group", group));
    if !is(5, "providers") {
        return out;
    }
    // An Event Hub authorization rule.
    if segments.len() == 11
        && is(7, "namespaces")
        && is(9, "authorizationRules")
        && let (Some(provider), Some(namespace), Some(rule)) = (seg(6), seg(8), seg(10))
    {
        out.extend([
            ("azure.resource.provider", provider),
            ("azure.resource.namespace", namespace),
            ("azure.resource.authorization_rule", rule),
        ]);
        return out;
    }
    // `<Namespace.Provider>/<type>/<name…>`.
    if let (Some(ns), Some(kind), Some(name)) = (seg(6), seg(7), rest_from(8)) {
        let rule_in_name = name.to_ascii_lowercase().contains("authorizationrules");
        if ns.contains('.')
            && !kind.is_empty()
            && !rule_in_name
            && let Some(provider) = rest_from(6).and_then(|r| r.get(..ns.len() + 1 + kind.len()))
        {
            out.push(("azure.resource.provider", provider));
            out.push(("azure.resource.name", name));
            return out;
        }
    }
    // Everything after `/providers/`.
    out.extend(rest_from(6).map(|p| ("azure.resource.provider", p)));
    out
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, optionally in braces.
fn is_guid(s: &str) -> bool {
    let s = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "8a4de8b5-095c-47d0-a96f-a75130c61d53";

    #[test]
    fn resource_id_parts_follow_the_pipeline() {
        let id = format!(
            "/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1/EXTENSIONS/CUSTOMSCRIPTEXTENSION"
        );
        assert_eq!(
            resource_id_parts(&id),
            vec![
                ("azure.subscription_id", SUB),
                ("azure.resource.group", "RG"),
                (
                    "azure.resource.provider",
                    "MICROSOFT.COMPUTE/VIRTUALMACHINES"
                ),
                (
                    "azure.resource.name",
                    "VM1/EXTENSIONS/CUSTOMSCRIPTEXTENSION"
                ),
            ]
        );
        let rule = format!(
            "/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/SA-HEMA/PROVIDERS/MICROSOFT.EVENTHUB/NAMESPACES/AZURELSEVENTS/AUTHORIZATIONRULES/ROOTMANAGESHAREDACCESSKEY"
        );
        assert_eq!(resource_id_parts(&rule).len(), 5);
        assert_eq!(
            resource_id_parts("/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG"),
            vec![]
        );
        let lower =
            format!("/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.Web/sites/x");
        assert_eq!(
            resource_id_parts(&lower),
            vec![
                ("azure.subscription_id", SUB),
                ("azure.resource.group", "rg"),
                ("azure.resource.provider", "Microsoft.Web/sites"),
                ("azure.resource.name", "x"),
            ]
        );
        assert_eq!(
            resource_id_parts("/TeNaNtS/t/PrOvIdErS/Microsoft.aadiam"),
            vec![("azure.resource.provider", "Microsoft.aadiam")]
        );
    }

    /// Dotted paths of the view's leaves (array elements at their array's path).
    fn leaf_paths(v: &Value<'_>, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(members) => {
                for (k, v) in members {
                    let p = if path.is_empty() {
                        k.to_string()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaf_paths(v, &p, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| leaf_paths(i, path, out)),
            _ => out.push(path.to_owned()),
        }
    }

    #[test]
    fn the_view_writes_only_fields_the_table_declares() {
        let raw = vmext_json::parse(
            br#"{"time":"2024-01-01T00:00:00Z","resourceId":"/SUBSCRIPTIONS/8a4de8b5-095c-47d0-a96f-a75130c61d53/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.EVENTHUB/NAMESPACES/N/AUTHORIZATIONRULES/R","operationName":"OP","category":"Write","resultType":"Failure","resultSignature":"s","tenantId":"t","operationVersion":"1","level":"Error","location":"west","correlationId":"c","durationMs":5,"callerIpAddress":"::1","identity":{"authorization":{"action":"a","evidence":{"principalId":"p","role":"r"}},"claims":{"name":"Full","a.b":"c","http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name":"u"},"x":1},"properties":{"statusMessage":"m","eventCategory":"Policy","requestBody":"{\"k\":1}","statusCode":"OK","serviceRequestId":"i","z":2},"other.key":{"deep":true}}"#,
        )
        .unwrap();
        let raw2 = vmext_json::parse(
            br#"{"callerIpAddress":"not-an-ip","identity":"someone","properties":"{\"result\":\"unknown\",\"policies\":1}","resourceId":"/tenants/t/providers/P"}"#,
        )
        .unwrap();
        for record in [raw, raw2] {
            let mut paths = Vec::new();
            leaf_paths(&ecs_view(&record), "", &mut paths);
            for path in paths {
                assert!(
                    mapping::all_writes()
                        .flat_map(|w| w.fields.iter())
                        .any(|f| f.covers(&path)),
                    "{path} is written but not declared"
                );
            }
        }
    }

    #[test]
    fn deep_raw_records_are_viewed_without_recursion() {
        // 100 000 levels: far beyond any thread's stack if the view recursed.
        let text = vmext_test_support::deep_raw_record(100_000);
        let limits = vmext_json::Limits { max_depth: 100_010 };
        let raw = vmext_json::parse_with(text.as_bytes(), limits).unwrap();
        assert_eq!(shape_of(&raw), Shape::AzureRaw);
        let view = ecs_view(&raw);
        let mut out = String::new();
        vmext_json::write_value(&mut out, &view);
        assert!(out.len() > 3 * 100_000, "{}", out.len());
        // Within the parser's limit, the whole detector runs on a small stack.
        let text = vmext_test_support::deep_raw_record(500);
        let verdicts = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let detector = crate::Detector::seed();
                match detector.evaluate(text.as_bytes()) {
                    Ok(crate::Outcome::Evaluated(records)) => records
                        .iter()
                        .map(|r| r.verdict_name().to_owned())
                        .collect::<Vec<_>>(),
                    other => vec![format!("{other:?}")],
                }
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(verdicts, ["alert"]);
    }

    #[test]
    fn raw_view_maps_the_rule_fields() {
        let raw = vmext_json::parse(
            br#"{"time":"2024-01-01T00:00:00.1234Z","resourceId":"/X","operationName":"OP","category":"Administrative","resultType":"SUCCESS","identity":{"authorization":{"evidence":{"principalType":"User","principalId":"p"}},"claims":{"name":"Full","http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name":"u@x"}},"callerIpAddress":"192.0.2.1","durationMs":"12","properties":{"statusCode":"Created","requestbody":"{}"}}"#,
        )
        .unwrap();
        assert_eq!(shape_of(&raw), Shape::AzureRaw);
        let view = ecs_view(&raw);
        let mut out = String::new();
        vmext_json::write_value(&mut out, &view);
        for expected in [
            r#""@timestamp":"2024-01-01T00:00:00.123Z""#,
            r#""operation_name":"OP""#,
            r#""principal_type":"User""#,
            r#""outcome":"success""#,
            r#""source":{"ip":"192.0.2.1"}"#,
            r#""duration":12000000"#,
            r#""fullname":"Full""#,
            r#""name":"u@x""#,
            r#""status_code":"Created""#,
            r#""requestbody":"{}""#,
        ] {
            assert!(out.contains(expected), "{expected} not in {out}");
        }
    }
}
