//! The ECS view of a raw Azure record, in VRL, for the fields a program needs.
//!
//! This is `vmext_engine::azure::ecs_view` written out for VRL: both walk the engine's mapping
//! table (`vmext_engine::azure::mapping`), so a key, a rename or a new field is declared once,
//! there; this module holds only each transform's VRL. The engine builds the view by
//! writing paths in the record's key order, later writes replacing earlier ones; a VRL object
//! keeps its keys sorted, and the VRL built here writes in that order, so it equals the
//! engine's view of the same record with its keys sorted (which is what a Vector event is).
//!
//! Only the parts of the view that the needed fields depend on are built. A part is one write
//! of the table; it is needed when one of its fields' paths and a needed field's path are one
//! a prefix of the other; writes to unrelated
//! paths cannot change a needed field's values. Parts the program cannot compute exactly are
//! refused with the field that needs them.

use std::collections::BTreeSet;

use vmext_engine::azure::ACTIVITY_LOG_CATEGORIES;
use vmext_engine::azure::mapping::{
    self, CLAIMS_PREFIX, EVIDENCE_RENAMES, FULLNAME_CLAIM, Guard, OTHER_KEYS, RAW_KEYS,
    RECORD_WRITES, Transform, USER_CLAIMS, Write,
};

use crate::code::{Code, string, string_array};
use crate::error::TranslateError;
use crate::timestamp;

/// Which write of the engine's mapping table a part of the view comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// Write `.1` of raw key `.0` in [`RAW_KEYS`].
    Key(usize, usize),
    /// [`OTHER_KEYS`]: every key the table does not name, under `azure.activitylogs`.
    Activity,
    /// Write `.0` of [`RECORD_WRITES`].
    Record(usize),
}

/// Every write of the table with the part it makes.
fn parts() -> impl Iterator<Item = (Part, &'static Write)> {
    let keys = RAW_KEYS.iter().enumerate().flat_map(|(k, key)| {
        key.writes
            .iter()
            .enumerate()
            .map(move |(w, write)| (Part::Key(k, w), write))
    });
    keys.chain(std::iter::once((Part::Activity, &OTHER_KEYS)))
        .chain(
            RECORD_WRITES
                .iter()
                .enumerate()
                .map(|(i, write)| (Part::Record(i), write)),
        )
}

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
            for (part, write) in parts() {
                for written in write.fields {
                    let written: Vec<&str> = written.path.split('.').collect();
                    if !related(&path, &written) {
                        continue;
                    }
                    if let Some(reason) = refusal(&path) {
                        return Err(TranslateError::RawField {
                            field: field.to_owned(),
                            reason,
                        });
                    }
                    needs.parts.insert(part);
                    if part == Part::Activity
                        && let Some(first) = path.get(2)
                    {
                        needs.activity.insert((*first).to_owned());
                    }
                }
            }
        }
        Ok(needs)
    }

    fn has(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }
}

/// Writes statements that build, in VRL variable `view`, the ECS view of the raw record in
/// `raw` as far as `needs` requires: the engine's mapping table walked in its order, each
/// needed write in VRL.
pub(crate) fn view(code: &mut Code, raw: &str, view: &str, needs: &Needs) {
    let act = String::from("_act");
    let (k, v) = (String::from("_k"), String::from("_v"));
    code.comment("the ECS view Elastic's azure pipeline would write, as far as the rule needs it");
    code.line(&format!("{view} = {{}}"));
    code.line(&format!("{act} = {{}}"));
    code.open(&format!("for_each(object({raw}) ?? {{}}) -> |{k}, {v}| {{"));
    // A branch per raw key and guard with a needed write, each its own `if`, in the table's
    // order: the engine applies every write whose guard admits the value, and VRL's compiler
    // type-checks an `else if` again at every level above it (a chain costs it the square of
    // its length).
    let mut chain = Chain::default();
    for (i, key) in RAW_KEYS.iter().enumerate() {
        let mut writes = key.writes.iter().enumerate().peekable();
        while let Some((w, first)) = writes.next() {
            let mut group = vec![(w, first)];
            while let Some(next) = writes.next_if(|(_, next)| next.guard == first.guard) {
                group.push(next);
            }
            let needed: Vec<&Write> = group
                .into_iter()
                .filter(|(w, _)| needs.has(Part::Key(i, *w)))
                .map(|(_, write)| write)
                .collect();
            if needed.is_empty() {
                continue;
            }
            let guard = match first.guard {
                Guard::Any => String::new(),
                Guard::String => format!(" && is_string({v})"),
                Guard::Object => format!(" && is_object({v})"),
            };
            chain.branch(code, &format!("{k} == {}{guard}", string(key.key)));
            for write in needed {
                key_write(code, write, &v, view, &act);
            }
        }
    }
    // Every other key goes under `azure.activitylogs`, split at its dots; keys whose first
    // segment no needed field starts with cannot change a needed field.
    if needs.has(Part::Activity) {
        let handled: Vec<&str> = RAW_KEYS.iter().map(|key| key.key).collect();
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
        code.line(&set(view, &fixed(mapping::ACTIVITY_PREFIX), &act));
    }
    for (i, write) in RECORD_WRITES.iter().enumerate() {
        if needs.has(Part::Record(i)) {
            record_write(code, write, raw, view);
        }
    }
    // The compiler types each `set` result with the path it wrote, so after the view's writes
    // its type is a large object, and every later statement's type check copies it. Read back
    // untyped, the seed program compiled about 1.4 times faster (measured with `vrl-scan`),
    // for one copy of the view, which is small, at run time.
    code.line(&format!(
        "{view} = object(get([{view}], [0]) ?? null) ?? {{}}"
    ));
}

/// `target = set(target, path, value) ?? target`.
fn set(target: &str, path: &str, value: &str) -> String {
    format!("{target} = set({target}, {path}, {value}) ?? {target}")
}

/// A dotted path as a VRL path array.
fn fixed(path: &str) -> String {
    string_array(path.split('.'))
}

/// One write of a raw key with value `v`, into `view` or, under `azure.activitylogs`, `act`.
fn key_write(code: &mut Code, write: &Write, v: &str, view: &str, act: &str) {
    match write.transform {
        Transform::Copy => {
            for field in write.fields {
                match field.activity_path() {
                    Some(path) => code.line(&set(act, &fixed(path), v)),
                    None => code.line(&set(view, &fixed(field.path), v)),
                }
            }
        }
        Transform::Timestamp => {
            let ts = String::from("_vtime");
            code.open(&format!("if is_string({v}) {{"));
            timestamp::normalise(code, &format!("string({v}) ?? \"\""), &ts);
            code.line(&format!(
                "if !is_null({ts}) {{ {} }}",
                set(view, &fixed("@timestamp"), &ts)
            ));
            code.close();
        }
        Transform::ResourceId => {
            code.line(&set(view, &fixed("azure.resource.id"), v));
            resource_id_parts(code, v, view);
        }
        Transform::CallerIp => {
            let ip = String::from("_ip");
            // Rust's own parser and formatter on both sides (ip_pton/ip_ntop are std's IpAddr).
            code.line(&format!("{ip} = ip_ntop(ip_pton({v}) ?? \"\") ?? null"));
            code.open(&format!("if is_string({ip}) {{"));
            code.line(&set(view, &fixed("source.ip"), &ip));
            code.line(&set(view, &fixed("client.ip"), &ip));
            code.line(&set(view, &fixed("related.ip"), &format!("[{ip}]")));
            code.reopen("} else {");
            code.line(&set(view, &fixed("source.address"), v));
            code.close();
        }
        Transform::EventType => {
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
        Transform::Identity => identity(code, v, act),
        // Every field these write is refused (see `refusal`), so they are never needed.
        Transform::DurationNanos | Transform::Properties => {}
        // Not raw-key writes.
        Transform::Activity
        | Transform::Outcome
        | Transform::DefaultEventCategory
        | Transform::Fixed
        | Transform::Dataset => {}
    }
}

/// One record-level write, from the raw record in `raw` into `view`.
fn record_write(code: &mut Code, write: &Write, raw: &str, view: &str) {
    match write.transform {
        Transform::Outcome => {
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
        Transform::Fixed => {
            for field in write.fields {
                if let Some(value) = field.value {
                    code.line(&set(view, &fixed(field.path), &string(value)));
                }
            }
        }
        Transform::Dataset => {
            for field in write.fields {
                if let Some(value) = field.value {
                    // A dotted top-level key, as the engine's detector adds it.
                    code.line(&format!(
                        "if includes({}, {raw}.category) {{ {} }}",
                        string_array(ACTIVITY_LOG_CATEGORIES),
                        set(view, &string_array([field.path]), &string(value))
                    ));
                }
            }
        }
        // Its field is refused (see `refusal`), so it is never needed.
        Transform::DefaultEventCategory => {}
        // Not record-level writes.
        Transform::Copy
        | Transform::Timestamp
        | Transform::ResourceId
        | Transform::CallerIp
        | Transform::DurationNanos
        | Transform::EventType
        | Transform::Identity
        | Transform::Properties
        | Transform::Activity => {}
    }
}

/// Branches written one after another, each its own `if`.
#[derive(Debug, Default)]
struct Chain {
    open: bool,
}

impl Chain {
    fn branch(&mut self, code: &mut Code, condition: &str) {
        if self.open {
            code.close();
        }
        code.open(&format!("if {condition} {{"));
        self.open = true;
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
    for (from, to) in EVIDENCE_RENAMES {
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
    for part in USER_CLAIMS {
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
        "if {ck} == {} {{ {} }}",
        string(FULLNAME_CLAIM),
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

    /// The part whose write declares `path`.
    fn part_writing(path: &str) -> Part {
        parts()
            .find(|(_, w)| w.fields.iter().any(|f| f.path == path))
            .map(|(part, _)| part)
            .unwrap()
    }

    #[test]
    fn needed_parts_follow_path_prefixes() {
        let n =
            needs(&["azure.activitylogs.identity.authorization.evidence.principal_type"]).unwrap();
        assert_eq!(
            n.parts,
            BTreeSet::from([Part::Activity, part_writing("azure.activitylogs.identity")])
        );
        assert_eq!(n.activity, BTreeSet::from(["identity".to_owned()]));
        let n = needs(&["azure.resource.name", "source", "data_stream.dataset"]).unwrap();
        assert_eq!(
            n.parts,
            BTreeSet::from([
                part_writing("azure.resource.id"),
                part_writing("source.ip"),
                part_writing("data_stream.dataset")
            ])
        );
        // Fields the view never has need nothing: they are absent in every raw record.
        let n = needs(&["user.name", "source.geo.country_name", "azure.foo"]).unwrap();
        assert!(n.parts.is_empty());
    }

    #[test]
    fn writes_the_generator_does_not_build_are_refused() {
        for (_, write) in parts() {
            if matches!(
                write.transform,
                Transform::DurationNanos | Transform::Properties | Transform::DefaultEventCategory
            ) {
                for field in write.fields {
                    assert!(needs(&[field.path]).is_err(), "{}", field.path);
                }
            }
        }
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
