//! The ECS view of a raw Azure record, in VRL, for the fields a program needs.
//!
//! This is `vmext_engine::azure::ecs_view` written out for VRL. The engine builds the view by
//! writing paths in the record's key order, later writes replacing earlier ones; a VRL object
//! keeps its keys sorted, and the VRL built here writes in that order, so it equals the
//! engine's view of the same record with its keys sorted (which is what a Vector event is).
//!
//! Only the parts of the view that the needed fields depend on are built. A part is needed
//! when its path and a needed field's path are one a prefix of the other; writes to unrelated
//! paths cannot change a needed field's values. Parts the program cannot compute exactly are
//! refused with the field that needs them.

use std::collections::BTreeSet;

use vmext_engine::azure::ACTIVITY_LOG_CATEGORIES;

use crate::code::{Code, string, string_array};
use crate::error::TranslateError;
use crate::timestamp;

/// A part of the view, written from one or more raw keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// `time` → `@timestamp`.
    Timestamp,
    /// `resourceId` → `azure.resource.id` and the parts parsed from it.
    ResourceId,
    /// `callerIpAddress` → `source.ip`, `client.ip`, `related.ip` or `source.address`.
    Caller,
    /// `level` → `log.level`.
    Level,
    /// `location` → `geo.name`.
    Location,
    /// `correlationId` → `azure.correlation_id`.
    Correlation,
    /// `operationName` → `event.action`.
    Action,
    /// `category` → `event.type`.
    EventType,
    /// `event.outcome` from `resultType`, else `properties.result`.
    Outcome,
    /// `event.kind` and `cloud.provider`, constant.
    Constants,
    /// `data_stream.dataset` for an activity-log category.
    Dataset,
    /// `azure.activitylogs.*`, from every other key.
    Activity,
}

/// Every path the engine's view writes, with the part that writes it.
const WRITES: [(&str, Option<Part>); 24] = [
    ("@timestamp", Some(Part::Timestamp)),
    ("azure.resource.id", Some(Part::ResourceId)),
    ("azure.subscription_id", Some(Part::ResourceId)),
    ("azure.resource.group", Some(Part::ResourceId)),
    ("azure.resource.provider", Some(Part::ResourceId)),
    ("azure.resource.name", Some(Part::ResourceId)),
    ("azure.resource.namespace", Some(Part::ResourceId)),
    ("azure.resource.authorization_rule", Some(Part::ResourceId)),
    ("source.ip", Some(Part::Caller)),
    ("client.ip", Some(Part::Caller)),
    ("related.ip", Some(Part::Caller)),
    ("source.address", Some(Part::Caller)),
    ("log.level", Some(Part::Level)),
    ("geo.name", Some(Part::Location)),
    ("azure.correlation_id", Some(Part::Correlation)),
    ("event.action", Some(Part::Action)),
    ("event.type", Some(Part::EventType)),
    ("event.outcome", Some(Part::Outcome)),
    ("event.kind", Some(Part::Constants)),
    ("cloud.provider", Some(Part::Constants)),
    ("data_stream.dataset", Some(Part::Dataset)),
    ("azure.activitylogs", Some(Part::Activity)),
    // Written by the engine but not built here (see `refusal`).
    ("event.duration", None),
    ("message", None),
];

/// Paths of the view the program does not compute, and why.
fn refusal(path: &[&str]) -> Option<&'static str> {
    let activity_rest = match path {
        ["azure", "activitylogs", rest @ ..] => rest,
        ["azure"] => return Some("it holds the whole view, which is not built in VRL"),
        ["message"] => {
            return Some(
                "it comes from `properties.statusMessage`, and `properties` may be a JSON string",
            );
        }
        ["event", "duration"] | ["event"] => {
            return Some(
                "`durationMs` × 10⁶ can exceed VRL's 64-bit integers where the engine uses 128",
            );
        }
        _ => return None,
    };
    match activity_rest {
        [] => Some("it holds the whole activity-log object, which is not built in VRL"),
        ["properties", ..] | ["event_category", ..] => Some(
            "it comes from `properties`, which may be a JSON-encoded string that Elastic's \
             pipeline decodes keeping repeated keys, where VRL's parse_json keeps one",
        ),
        ["identity"] | ["identity", "claims", ..] => Some(
            "claim keys have `.` replaced by `_`, so two claims can share one key, which one \
             VRL object cannot hold twice",
        ),
        _ => None,
    }
}

/// Whether one path is a prefix of the other, segment by segment.
fn related(a: &[&str], b: &[&str]) -> bool {
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// What the view must contain for a set of fields.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    parts: BTreeSet<Part>,
    /// First segments under `azure.activitylogs` that some field reaches.
    activity: BTreeSet<String>,
}

impl Needs {
    /// The parts needed for `fields`, or the first field that cannot be built.
    pub(crate) fn of<'f>(
        fields: impl IntoIterator<Item = &'f str>,
    ) -> Result<Needs, TranslateError> {
        let mut needs = Needs::default();
        for field in fields {
            let path: Vec<&str> = field.split('.').collect();
            for (written, part) in WRITES {
                let written: Vec<&str> = written.split('.').collect();
                if !related(&path, &written) {
                    continue;
                }
                if let Some(reason) = refusal(&path) {
                    return Err(TranslateError::RawField {
                        field: field.to_owned(),
                        reason,
                    });
                }
                let Some(part) = part else { continue };
                needs.parts.insert(part);
                if part == Part::Activity
                    && let Some(first) = path.get(2)
                {
                    needs.activity.insert((*first).to_owned());
                }
            }
        }
        Ok(needs)
    }

    fn has(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    fn activity(&self, first: &str) -> bool {
        self.has(Part::Activity) && self.activity.contains(first)
    }
}

/// Raw keys the engine maps to a fixed place; any other key goes under `azure.activitylogs`.
const SPECIAL_KEYS: [&str; 12] = [
    "time",
    "resourceId",
    "callerIpAddress",
    "level",
    "location",
    "durationMs",
    "correlationId",
    "operationName",
    "resultType",
    "resultSignature",
    "tenantId",
    "operationVersion",
];

/// Keys mapped by the engine besides [`SPECIAL_KEYS`].
const HANDLED_KEYS: [&str; 3] = ["identity", "properties", "category"];

/// The claims Elastic's pipeline copies to `claims_initiated_by_user`.
const CLAIMS_PREFIX: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/";

/// Writes statements that build, in VRL variable `view`, the ECS view of the raw record in
/// `raw` as far as `needs` requires.
pub(crate) fn view(code: &mut Code, raw: &str, view: &str, needs: &Needs) {
    let act = String::from("_act");
    let (k, v) = (String::from("_k"), String::from("_v"));
    code.comment("the ECS view Elastic's azure pipeline would write, as far as the rule needs it");
    code.line(&format!("{view} = {{}}"));
    code.line(&format!("{act} = {{}}"));
    let set = |target: &str, path: &str, value: &str| {
        format!("{target} = set({target}, {path}, {value}) ?? {target}")
    };
    let fixed = |p: &str| string_array(p.split('.'));
    code.open(&format!("for_each(object({raw}) ?? {{}}) -> |{k}, {v}| {{"));
    // One if-chain over the key; each needed part adds its branch.
    let mut chain = Chain::default();
    if needs.has(Part::Timestamp) {
        chain.branch(code, &format!("{k} == \"time\""));
        let ts = String::from("_vtime");
        code.open(&format!("if is_string({v}) {{"));
        timestamp::normalise(code, &format!("string({v}) ?? \"\""), &ts);
        code.line(&format!(
            "if !is_null({ts}) {{ {} }}",
            set(view, &fixed("@timestamp"), &ts)
        ));
        code.close();
    }
    if needs.has(Part::ResourceId) {
        chain.branch(code, &format!("{k} == \"resourceId\""));
        code.line(&set(view, &fixed("azure.resource.id"), &v));
        resource_id_parts(code, &v, view);
    }
    if needs.has(Part::Caller) {
        chain.branch(code, &format!("{k} == \"callerIpAddress\""));
        let ip = String::from("_ip");
        // Rust's own parser and formatter on both sides (ip_pton/ip_ntop are std's IpAddr).
        code.line(&format!("{ip} = ip_ntop(ip_pton({v}) ?? \"\") ?? null"));
        code.open(&format!("if is_string({ip}) {{"));
        code.line(&set(view, &fixed("source.ip"), &ip));
        code.line(&set(view, &fixed("client.ip"), &ip));
        code.line(&set(view, &fixed("related.ip"), &format!("[{ip}]")));
        code.reopen("} else {");
        code.line(&set(view, &fixed("source.address"), &v));
        code.close();
    }
    for (part, key, path) in [
        (Part::Level, "level", "log.level"),
        (Part::Location, "location", "geo.name"),
        (Part::Correlation, "correlationId", "azure.correlation_id"),
    ] {
        if needs.has(part) {
            chain.branch(code, &format!("{k} == {}", string(key)));
            code.line(&set(view, &fixed(path), &v));
        }
    }
    if needs.has(Part::Action) || needs.activity("operation_name") {
        chain.branch(code, &format!("{k} == \"operationName\""));
        if needs.has(Part::Action) {
            code.line(&set(view, &fixed("event.action"), &v));
        }
        if needs.activity("operation_name") {
            code.line(&set(&act, &fixed("operation_name"), &v));
        }
    }
    for (key, name) in [
        ("resultType", "result_type"),
        ("resultSignature", "result_signature"),
        ("tenantId", "tenant_id"),
        ("operationVersion", "operation_version"),
    ] {
        if needs.activity(name) {
            chain.branch(code, &format!("{k} == {}", string(key)));
            code.line(&set(&act, &fixed(name), &v));
        }
    }
    if needs.activity("identity") {
        chain.branch(code, &format!("{k} == \"identity\" && is_object({v})"));
        identity(code, &v, &act);
    }
    if needs.activity("identity_name") {
        chain.branch(code, &format!("{k} == \"identity\" && is_string({v})"));
        code.line(&set(&act, &fixed("identity_name"), &v));
    }
    if needs.activity("category") || needs.has(Part::EventType) {
        chain.branch(code, &format!("{k} == \"category\""));
        if needs.activity("category") {
            code.line(&set(&act, &fixed("category"), &v));
        }
        if needs.has(Part::EventType) {
            let c = String::from("_c");
            code.line(&format!("{c} = downcase(string({v}) ?? \"\")"));
            code.open(&format!(
                "if is_string({v}) && includes([\"write\", \"action\", \"read\", \"delete\"], {c}) {{"
            ));
            code.line(&format!(
                "{c} = if {c} == \"read\" {{ \"access\" }} else if {c} == \"delete\" {{ \"deletion\" }} else {{ \"change\" }}"
            ));
            code.line(&set(view, &fixed("event.type"), &format!("[{c}]")));
            code.close();
        }
    }
    // Every other key goes under `azure.activitylogs`, split at its dots; keys whose first
    // segment no needed field starts with cannot change a needed field.
    if needs.has(Part::Activity) {
        let handled: Vec<&str> = SPECIAL_KEYS.iter().chain(&HANDLED_KEYS).copied().collect();
        let firsts: Vec<&str> = needs.activity.iter().map(String::as_str).collect();
        chain.branch(code, &format!("!includes({}, {k})", string_array(handled)));
        let path = String::from("_path");
        code.line(&format!("{path} = split({k}, \".\")"));
        code.line(&format!(
            "if includes({}, {path}[0]) {{ {} }}",
            string_array(firsts),
            set(&act, &path, &v)
        ));
    }
    chain.end(code);
    code.close();
    if needs.has(Part::Activity) {
        code.line(&set(view, &fixed("azure.activitylogs"), &act));
    }
    if needs.has(Part::Outcome) {
        let (r, o) = (String::from("_rt"), String::from("_outcome"));
        code.line(&format!("{o} = null"));
        code.line(&format!("{r} = {raw}.resultType"));
        code.open(&format!("if is_string({r}) {{"));
        code.line(&format!("{r} = downcase(string({r}) ?? \"\")"));
        code.line(&format!(
            "if {r} == \"success\" || {r} == \"failure\" {{ {o} = {r} }}"
        ));
        code.close();
        code.open(&format!("if is_null({o}) {{"));
        code.line(&format!("{r} = {raw}.properties.result"));
        code.line(&format!(
            "if includes([\"success\", \"failure\", \"unknown\"], {r}) {{ {o} = {r} }}"
        ));
        code.close();
        code.line(&format!(
            "if !is_null({o}) {{ {} }}",
            set(view, &fixed("event.outcome"), &o)
        ));
    }
    if needs.has(Part::Constants) {
        code.line(&set(view, &fixed("event.kind"), "\"event\""));
        code.line(&set(view, &fixed("cloud.provider"), "\"azure\""));
    }
    if needs.has(Part::Dataset) {
        code.line(&format!(
            "if includes({}, {raw}.category) {{ {} }}",
            string_array(ACTIVITY_LOG_CATEGORIES),
            set(
                view,
                &string_array(["data_stream.dataset"]),
                &string(vmext_engine::azure::ACTIVITY_LOGS_DATASET)
            )
        ));
    }
}

/// An `if … else if …` chain whose branches are written one after another.
#[derive(Debug, Default)]
struct Chain {
    open: bool,
}

impl Chain {
    fn branch(&mut self, code: &mut Code, condition: &str) {
        if self.open {
            code.reopen(&format!("}} else if {condition} {{"));
        } else {
            code.open(&format!("if {condition} {{"));
            self.open = true;
        }
    }

    fn end(self, code: &mut Code) {
        if self.open {
            code.close();
        } else {
            code.line("null");
        }
    }
}

/// `identity` as an object: authorization (evidence keys renamed), the user claims, anything
/// else under `identity.` (the kept claims object is not built; see [`refusal`]).
fn identity(code: &mut Code, value: &str, act: &str) {
    let set = |path: &str, v: &str| format!("{act} = set({act}, {path}, {v}) ?? {act}");
    let under = |prefix: &str, key: &str| {
        format!(
            "append({}, split({key}, \".\"))",
            string_array(prefix.split('.'))
        )
    };
    let (ik, iv, ak, av, ek, ev, en) = (
        String::from("_ik"),
        String::from("_iv"),
        String::from("_ak"),
        String::from("_av"),
        String::from("_ek"),
        String::from("_ev"),
        String::from("_en"),
    );
    code.open(&format!(
        "for_each(object({value}) ?? {{}}) -> |{ik}, {iv}| {{"
    ));
    code.open(&format!("if {ik} == \"authorization\" {{"));
    code.open(&format!("if is_object({iv}) {{"));
    code.open(&format!(
        "for_each(object({iv}) ?? {{}}) -> |{ak}, {av}| {{"
    ));
    code.open(&format!("if {ak} == \"evidence\" {{"));
    code.open(&format!("if is_object({av}) {{"));
    code.open(&format!(
        "for_each(object({av}) ?? {{}}) -> |{ek}, {ev}| {{"
    ));
    code.line(&format!("{en} = {ek}"));
    for (from, to) in [
        ("principalId", "principal_id"),
        ("principalType", "principal_type"),
        ("roleAssignmentScope", "role_assignment_scope"),
        ("roleAssignmentId", "role_assignment_id"),
        ("roleDefinitionId", "role_definition_id"),
    ] {
        code.line(&format!(
            "if {ek} == {} {{ {en} = {} }}",
            string(from),
            string(to)
        ));
    }
    code.line(&set(&under("identity.authorization.evidence", &en), &ev));
    code.close();
    code.reopen("} else {");
    code.line(&set(
        &string_array(["identity", "authorization", "evidence"]),
        &av,
    ));
    code.close();
    code.reopen("} else {");
    code.line(&set(&under("identity.authorization", &ak), &av));
    code.close();
    code.close();
    code.reopen("} else {");
    code.line(&set(&string_array(["identity", "authorization"]), &iv));
    code.close();
    code.reopen(&format!("}} else if {ik} == \"claims\" {{"));
    let (ck, cv, by_user) = (
        String::from("_ck"),
        String::from("_cv"),
        String::from("_byuser"),
    );
    code.open(&format!("if is_object({iv}) {{"));
    code.line(&format!("{by_user} = false"));
    code.open(&format!(
        "for_each(object({iv}) ?? {{}}) -> |{ck}, {cv}| {{"
    ));
    for part in ["name", "givenname", "surname"] {
        let mut line = set(
            &string_array(["identity", "claims_initiated_by_user", part]),
            &cv,
        );
        if part == "name" {
            line = format!("{by_user} = true; {line}");
        }
        code.line(&format!(
            "if {ck} == {} {{ {line} }}",
            string(&format!("{CLAIMS_PREFIX}{part}"))
        ));
    }
    code.line(&format!(
        "if {ck} == \"name\" {{ {} }}",
        set(
            &string_array(["identity", "claims_initiated_by_user", "fullname"]),
            &cv
        )
    ));
    code.close();
    code.line(&format!(
        "if {by_user} {{ {} }}",
        set(
            &string_array(["identity", "claims_initiated_by_user", "schema"]),
            &string(CLAIMS_PREFIX.trim_end_matches('/'))
        )
    ));
    code.reopen("} else {");
    code.line(&set(&string_array(["identity", "claims"]), &iv));
    code.close();
    code.reopen("} else {");
    code.line(&set(&under("identity", &ik), &iv));
    code.close();
    code.close();
}

/// The parts Elastic's pipeline reads out of a string `resourceId` (the engine's
/// `resource_id_parts`): keyword segments compared without regard to ASCII case, the
/// subscription a GUID, the first matching pattern wins.
fn resource_id_parts(code: &mut Code, value: &str, view: &str) {
    let (id, seg, n, done, name) = (
        String::from("_id"),
        String::from("_seg"),
        String::from("_n"),
        String::from("_done"),
        String::from("_name"),
    );
    let set = |path: &str, v: &str| {
        format!(
            "{view} = set({view}, {}, {v}) ?? {view}",
            string_array(path.split('.'))
        )
    };
    // `downcase` lowers non-ASCII letters too; the only one that becomes ASCII is the Kelvin
    // sign (→ `k`), and no keyword below contains a `k`, so this equals
    // `eq_ignore_ascii_case`.
    let is = |i: usize, word: &str| {
        format!(
            "downcase(string({seg}[{i}]) ?? \"\") == {}",
            string(&word.to_ascii_lowercase())
        )
    };
    let s = |i: usize| format!("(string({seg}[{i}]) ?? \"\")");
    // The text from segment `i` on, when there is some: `rest_from`. Taken as the last part of
    // a split limited to `i + 1` parts rather than by joining segments again: `join` is fallible
    // in the VRL Vector 0.57 pins and infallible on string arrays in crates.io `vrl` 0.36+, so
    // the error handling one of them requires, the other rejects.
    let rest = |i: usize| {
        format!(
            "(string(split({id}, \"/\", limit: {})[{i}]) ?? \"\")",
            i + 1
        )
    };
    let guid = r"\A(?:\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\z";
    code.open(&format!("if is_string({value}) {{"));
    code.line(&format!("{id} = string({value}) ?? \"\""));
    code.line(&format!("{seg} = split({id}, \"/\")"));
    code.line(&format!("{n} = length({seg})"));
    code.open(&format!("if {} == \"\" {{", s(0)));
    code.open(&format!(
        "if {} && {} {{",
        is(1, "tenants"),
        is(3, "providers")
    ));
    code.line(&format!(
        "if {n} > 4 && {} != \"\" {{ {} }}",
        rest(4),
        set("azure.resource.provider", &rest(4))
    ));
    code.reopen(&format!(
        "}} else if {} && match({}, r'{guid}') {{",
        is(1, "subscriptions"),
        s(2)
    ));
    code.line(&set("azure.subscription_id", &s(2)));
    code.open(&format!("if {} {{", is(3, "providers")));
    code.line(&format!(
        "if {n} > 4 && {} != \"\" {{ {} }}",
        rest(4),
        set("azure.resource.provider", &rest(4))
    ));
    code.reopen(&format!(
        "}} else if {} && {} != \"\" {{",
        is(3, "resourceGroups"),
        s(4)
    ));
    code.line(&set("azure.resource.group", &s(4)));
    code.open(&format!("if {} {{", is(5, "providers")));
    code.open(&format!(
        "if {n} == 11 && {} && {} {{",
        is(7, "namespaces"),
        is(9, "authorizationRules")
    ));
    code.line(&set("azure.resource.provider", &s(6)));
    code.line(&set("azure.resource.namespace", &s(8)));
    code.line(&set("azure.resource.authorization_rule", &s(10)));
    code.reopen("} else {");
    code.line(&format!("{done} = false"));
    code.open(&format!("if {n} > 8 {{"));
    code.line(&format!("{name} = {}", rest(8)));
    code.open(&format!(
        "if {name} != \"\" && contains({}, \".\") && {} != \"\" && !contains(downcase({name}), \"authorizationrules\") {{",
        s(6),
        s(7)
    ));
    code.line(&set(
        "azure.resource.provider",
        &format!("{} + \"/\" + {}", s(6), s(7)),
    ));
    code.line(&set("azure.resource.name", &name));
    code.line(&format!("{done} = true"));
    code.close();
    code.close();
    code.line(&format!(
        "if !{done} && {n} > 6 && {} != \"\" {{ {} }}",
        rest(6),
        set("azure.resource.provider", &rest(6))
    ));
    code.close();
    code.close();
    code.close();
    code.close();
    code.close();
    code.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(fields: &[&str]) -> Result<Needs, TranslateError> {
        Needs::of(fields.iter().copied())
    }

    #[test]
    fn needed_parts_follow_path_prefixes() {
        let n =
            needs(&["azure.activitylogs.identity.authorization.evidence.principal_type"]).unwrap();
        assert_eq!(n.parts, BTreeSet::from([Part::Activity]));
        assert_eq!(n.activity, BTreeSet::from(["identity".to_owned()]));
        let n = needs(&["azure.resource.name", "source", "data_stream.dataset"]).unwrap();
        assert_eq!(
            n.parts,
            BTreeSet::from([Part::ResourceId, Part::Caller, Part::Dataset])
        );
        // Fields the view never has need nothing: they are absent in every raw record.
        let n = needs(&["user.name", "source.geo.country_name", "azure.foo"]).unwrap();
        assert!(n.parts.is_empty());
    }

    #[test]
    fn fields_that_cannot_be_built_exactly_are_refused() {
        for field in [
            "azure",
            "azure.activitylogs",
            "azure.activitylogs.properties.requestbody",
            "azure.activitylogs.event_category",
            "azure.activitylogs.identity",
            "azure.activitylogs.identity.claims.appid",
            "message",
            "event",
            "event.duration",
        ] {
            let err = needs(&[field]).unwrap_err();
            assert!(
                matches!(&err, TranslateError::RawField { field: f, .. } if f == field),
                "{field}: {err:?}"
            );
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn the_view_is_built_only_as_far_as_needed() {
        let mut code = Code::new();
        view(
            &mut code,
            "_r",
            "_view",
            &needs(&["event.outcome"]).unwrap(),
        );
        let v = code.finish();
        assert!(
            v.contains("_vmext_record.resultType") || v.contains("_r.resultType"),
            "{v}"
        );
        assert!(!v.contains("resourceId"), "{v}");
        let mut code = Code::new();
        view(
            &mut code,
            "_r",
            "_view",
            &needs(&["azure.activitylogs.identity.claims_initiated_by_user.name"]).unwrap(),
        );
        let v = code.finish();
        assert!(v.contains(CLAIMS_PREFIX), "{v}");
        assert!(v.contains("\"principalType\""), "{v}");
    }
}
