//! The whole VRL program for a rule: envelopes, shapes, the view, the query, the alert.
//!
//! The program does for each event what the Fluent Bit filter's annotate mode does for each
//! record: when the rule matches, it adds the top-level key `vmext_alerts` holding the ECS
//! alerts (several for an Event Hub envelope); any other event is left exactly as it came.

use vmext_engine::azure::{ECS_MARKERS, RAW_MARKERS};
use vmext_engine::{Detector, FAMILY_FIELD, ProfileName, Rule};
use vmext_kql::ast::{FieldMatch, Node};

use crate::code::{Code, array, balanced, item, json_literal, string, string_array};
use crate::error::TranslateError;
use crate::prefilter;
use crate::query::{
    Translator, VALUES, key_table, path, plain_matchable, plain_path_condition, segments,
    walk_rounds,
};
use crate::raw::{self, Needs};

/// The top-level key the program adds alerts under, as the Fluent Bit annotate mode does.
pub use vmext_engine::alert::ANNOTATION_KEY;
use vmext_engine::alert::owned_by_alert;

/// The top-level keys Vector's `file` and `stdin` sources add to an event in the legacy log
/// namespace (their default names: the global `log_schema` keys and the `file` source's
/// `file_key`). An Event Hub envelope is a document whose only member is `records`, an array
/// (the engine's rule); in Vector that document can arrive with these keys beside `records`,
/// and the program then still reads it as an envelope. In the `vector` log namespace the event
/// is the document alone and the keys never appear.
pub const SOURCE_METADATA_KEYS: [&str; 5] = ["file", "host", "message", "source_type", "timestamp"];

/// The VRL program for a detector's rule and query.
pub fn program(detector: &Detector) -> Result<String, TranslateError> {
    if detector.profile() != ProfileName::Faithful {
        return Err(TranslateError::Profile {
            profile: detector.profile().as_str(),
        });
    }
    let rule = detector.rule();
    let root = detector.query().root();
    let mut code = Code::new();
    header(&mut code, rule, detector.query().source());
    let records = "_vmext_records";
    let envelope = "_vmext_envelope";
    let alerts = "_vmext_alerts";
    let (index, record, view) = ("_vmext_index", "_vmext_record", "_vmext_view");
    // `get` always returns an untyped value, so the program type-checks the same whatever
    // Vector knows about the event's fields.
    let guarded = guard(&mut code, root)?;
    let fast_path = prefilter::condition(detector.prefilter());
    // Blocks keep the compiler's work down: VRL's compiler copies every variable in scope at
    // each step of its type check (compiling this program took over a second when everything
    // was a variable of the whole program), and a variable first set inside a block, an `if`
    // predicate's block included, ends with the block.
    if let Some(condition) = &fast_path {
        code.comment(
            "the fast path: the engine's literal prefilter on the event's JSON text. An event\n\
             without the literals every match contains is left as it is, without a walk.",
        );
        code.open("if {");
        code.line(&format!("{} = encode_json(.)", prefilter::TEXT));
        if condition.needs_lower {
            code.line(&format!(
                "{} = downcase({})",
                prefilter::LOWER,
                prefilter::TEXT
            ));
        }
        code.line(&condition.expression);
        code.reopen("} {");
    }
    // Nothing here passes the event or a record to a function: a function's argument is a
    // copy, and copying a record costs more than everything the fast path does. Paths
    // (`.records`, `_vmext_view.azure`) and `exists` read in place.
    code.line(&format!("{envelope} = false"));
    code.line(&format!("{alerts} = []"));
    // Each record is bound to the view's name: an ECS record is its own view, and reading it
    // there needs no copy. A raw record is copied aside and its view built in its place.
    code.open("for_each({");
    code.line(&format!("{records} = get([.records], [0]) ?? null"));
    code.comment(&format!(
        "an Event Hub envelope {{\"records\": [...]}}: one verdict per record. The keys a Vector\n\
         source adds in the legacy log namespace ({}) do not count.",
        SOURCE_METADATA_KEYS.join(", ")
    ));
    code.open(&format!("if is_array({records}) {{"));
    code.line(&format!(
        "_vmext_other = filter(object(get([.], [0]) ?? null) ?? {{}}) -> |_ok, _ov| {{ _ok != \"records\" && !includes({}, _ok) }}",
        string_array(SOURCE_METADATA_KEYS)
    ));
    code.line(&format!("{envelope} = length(_vmext_other) == 0"));
    code.close();
    code.line(&format!(
        "if {envelope} {{ array({records}) ?? [] }} else {{ [.] }}"
    ));
    code.reopen(&format!("}}) -> |{index}, {view}| {{"));
    code.open(&format!("if is_object({view}) {{"));
    // The view is built in two steps: the fields the query reads for every record, and, only
    // for a record that matches, again with the fields its alert reads as well (the time,
    // the caller and the like cost more than most records are worth).
    let query_fields = query_fields(root);
    let mut alert_fields = query_fields.clone();
    alert_fields.extend(rule.investigation_fields.iter().cloned());
    alert_fields.push(FAMILY_FIELD.to_owned());
    let query_needs = Needs::of(query_fields.iter().map(String::as_str))?;
    let alert_needs = Needs::of(alert_fields.iter().map(String::as_str))?;
    // Declared here: a variable first set inside a block ends with the block. It holds the
    // raw record of a raw record, and stays null for an ECS one: it is the record's shape too.
    code.line(&format!("{record} = null"));
    code.open("if {");
    raw_shape(&mut code, view);
    code.reopen("} {");
    code.line(&format!("{record} = {view}"));
    raw::view(&mut code, record, view, &query_needs);
    code.reopen("} else {");
    ecs_view(&mut code, view)?;
    code.close();
    code.blank();
    code.open("if {");
    code.comment(&format!(
        "the rule's query: {}",
        one_line(detector.query().source())
    ));
    let matched = Translator::new(&mut code).node(root, view)?;
    code.line(&matched);
    code.reopen("} {");
    code.open(&format!("if !is_null({record}) {{"));
    raw::view(&mut code, record, view, &alert_needs);
    code.close();
    let alert = alert(&mut code, rule, detector.family_clauses(), view, record)?;
    code.line(&format!(
        "if {envelope} {{ {alert} = set({alert}, [\"vmext\", \"envelope_index\"], {index}) ?? {alert} }}"
    ));
    code.line(&format!("{alerts} = push({alerts}, {alert})"));
    code.close();
    code.close();
    code.close();
    code.open(&format!("if length({alerts}) > 0 {{"));
    code.line(&format!(".{ANNOTATION_KEY} = {alerts}"));
    code.close();
    if fast_path.is_some() {
        code.close();
    }
    if guarded {
        code.close();
    }
    Ok(code.finish())
}

/// The member the engine adds to an ECS record's view when it infers the dataset.
const INFERRED_FIELD: &str = "data_stream.dataset";

/// The fast path's first step, for an ECS event whose fields lie on their plain paths: the
/// query's top-level `field:values` clauses, read in place, before anything copies the event.
/// Opens a block that runs only when none of them is proved false; returns whether it did.
///
/// An event with an ECS marker key at the top level is one ECS record (not an envelope, whose
/// only other keys are a Vector source's), and its view is itself but for the member
/// [`INFERRED_FIELD`] the engine may add; so a clause on any field outside that member, false
/// on the event, is false on the view, and the conjunction with it.
fn guard(code: &mut Code, root: &Node) -> Result<bool, TranslateError> {
    let conjuncts = match root {
        Node::And(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    let clauses: Vec<&FieldMatch> = conjuncts
        .iter()
        .filter_map(|n| match n {
            Node::Match(m)
                if plain_matchable(m)
                    && m.field.name != INFERRED_FIELD
                    && !m.field.name.starts_with(&format!("{INFERRED_FIELD}.")) =>
            {
                Some(m)
            }
            _ => None,
        })
        .collect();
    if clauses.is_empty() {
        return Ok(false);
    }
    let pass = "_vmext_pass";
    code.comment(
        "the fast path, first step: an ECS event whose fields lie on their plain paths (no\n\
         dotted key, no array on the way) is rejected by the query's top-level clauses, read\n\
         in place.",
    );
    code.open("if {");
    code.line(&format!("{pass} = true"));
    let markers: Vec<String> = ECS_MARKERS
        .iter()
        .map(|m| format!("exists(.{})", string(m)))
        .collect();
    code.open(&format!("if {} {{", markers.join(" || ")));
    for clause in clauses {
        code.open(&format!("if {pass} {{"));
        Translator::new(code).plain_match(clause, ".", pass)?;
        code.close();
    }
    code.close();
    code.line(pass);
    code.reopen("} {");
    Ok(true)
}

/// The program for the built-in seed rule.
pub fn seed_program() -> Result<String, TranslateError> {
    program(&Detector::seed())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(code: &mut Code, rule: &Rule, query: &str) {
    code.comment(&format!(
        "{} ({})\n\
         Generated by vmext-vrl from the rule file and the engine's parsed query; do not edit.\n\
         Regenerate with `cargo xtask vrl`.\n\
         \n\
         For a `remap` transform. When the rule matches an event (an ECS document or a raw\n\
         Azure Activity Log record), the program adds `{ANNOTATION_KEY}`: an array of ECS\n\
         alerts, one per matching record (an Event Hub envelope {{\"records\": [...]}} can\n\
         hold several; beside `records`, the keys a Vector source adds in the legacy log\n\
         namespace do not count: {}).\n\
         Any other event is left as it is.\n\
         \n\
         Query:",
        rule.name,
        rule.rule_id,
        SOURCE_METADATA_KEYS.join(", ")
    ));
    for line in query.trim().lines() {
        code.comment(&format!("  {}", line.trim_end()));
    }
    code.blank();
}

/// The engine's `shape_of`: raw when a raw marker key is at the top level and no ECS marker
/// (plain or as a dotted prefix) is. Writes the statements of an `if` predicate's block whose
/// value is whether the record in `record` is raw.
///
/// The keys are looked up with `exists`, in place; only a record with a raw marker and no
/// plain ECS marker has its keys walked, for dotted ECS prefixes (`"azure.x": …`).
fn raw_shape(code: &mut Code, record: &str) {
    let (ecs, raw, k, v) = ("_se", "_sr", "_sk", "_sv");
    let present = |markers: &[&str]| -> String {
        let tests: Vec<String> = markers
            .iter()
            .map(|m| format!("exists({record}.{})", string(m)))
            .collect();
        balanced(&tests, " || ").unwrap_or_else(|| "false".to_owned())
    };
    code.line(&format!("{raw} = {}", present(&RAW_MARKERS)));
    code.line(&format!("{ecs} = {}", present(&ECS_MARKERS)));
    let prefixed: Vec<String> = ECS_MARKERS
        .iter()
        .map(|m| format!("starts_with({k}, {})", string(&format!("{m}."))))
        .collect();
    code.open(&format!("if {raw} && !{ecs} {{"));
    code.open(&format!(
        "for_each(object({record}) ?? {{}}) -> |{k}, {v}| {{"
    ));
    code.line(&format!(
        "if {} {{ {ecs} = true }}",
        balanced(&prefixed, " || ").unwrap_or_else(|| "false".to_owned())
    ));
    code.close();
    code.close();
    code.line(&format!("!{ecs} && {raw}"));
}

/// An ECS record is its own view, with `data_stream.dataset` inferred as the engine does:
/// when the record has no indexed dataset but has fields under `azure.activitylogs`, the view
/// gets one more top-level member `"data_stream.dataset": "azure.activitylogs"`.
fn ecs_view(code: &mut Code, view: &str) -> Result<(), TranslateError> {
    let dataset = vmext_engine::azure::ACTIVITY_LOGS_DATASET;
    let has = exists(code, view, INFERRED_FIELD)?;
    code.line(&format!("_has_dataset = {has}"));
    code.open("if !_has_dataset {");
    let activity = exists(code, view, dataset)?;
    code.open(&format!("if {activity} {{"));
    // A member already named `data_stream.dataset` holds nothing indexed; the engine's view
    // then has two such members, which read as one array of both values.
    let old = "_old_dataset";
    code.line(&format!("{old} = {view}.\"data_stream.dataset\""));
    code.open(&format!("if exists({view}.\"data_stream.dataset\") {{"));
    code.line(&format!(
        "{view} = set({view}, [\"data_stream.dataset\"], [{old}, {}]) ?? {view}",
        string(dataset)
    ));
    code.reopen("} else {");
    code.line(&format!(
        "{view} = set({view}, [\"data_stream.dataset\"], {}) ?? {view}",
        string(dataset)
    ));
    code.close();
    code.close();
    code.close();
    Ok(())
}

/// `field:*` on the object in `root`, as a variable.
fn exists(code: &mut Code, root: &str, field: &str) -> Result<String, TranslateError> {
    let node =
        vmext_kql::parse(&format!("{field}:*")).map_err(|_| TranslateError::EmptySegment {
            field: field.to_owned(),
        })?;
    Translator::new(code).node(&node, root)
}

/// Every field the query reads, with nested fields as full paths.
fn query_fields(root: &Node) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Node, String)> = vec![(root, String::new())];
    while let Some((node, prefix)) = stack.pop() {
        match node {
            Node::And(items) | Node::Or(items) => {
                stack.extend(items.iter().map(|n| (n, prefix.clone())));
            }
            Node::Not(inner) => stack.push((inner, prefix)),
            Node::Match(m) => out.push(format!("{prefix}{}", m.field.name)),
            Node::Range(r) => out.push(format!("{prefix}{}", r.field.name)),
            Node::Nested(n) => {
                out.push(format!("{prefix}{}", n.field.name));
                stack.push((&n.query, format!("{prefix}{}.", n.field.name)));
            }
            Node::MatchAll | Node::FreeText(_) => {}
        }
    }
    out
}

/// The scalar leaves of the collected values (what the engine's `leaves_at` returns).
fn leaves(code: &mut Code) -> &'static str {
    let out = "_leaves";
    code.line(&format!("{out} = []"));
    code.line(&format!(
        "for_each({}) -> |_li, _lx| {{ if !is_null(_lx) && !is_object(_lx) {{ {out} = push({out}, _lx) }} }}",
        array(VALUES)
    ));
    out
}

/// Statements building the alert for the matching record (`record` holds the raw record of a
/// raw one, null for an ECS one); returns its variable.
fn alert(
    code: &mut Code,
    rule: &Rule,
    family_clauses: &[FieldMatch],
    view: &str,
    record: &str,
) -> Result<&'static str, TranslateError> {
    let alert = "_vmext_alert";
    let template = rule.alert_template_json();
    let template =
        vmext_json::parse(template.as_bytes()).map_err(|_| TranslateError::RawField {
            field: "alert template".to_owned(),
            reason: "the engine's alert template is not JSON",
        })?;
    code.comment("the alert, as the engine builds it");
    // Through `get`, untyped: the compiler would otherwise carry the template's full type
    // into every closure below, which makes compiling the program very slow.
    code.line(&format!(
        "{alert} = get([{}], [0]) ?? {{}}",
        json_literal(&template)
    ));
    // `@timestamp`: the first leaf's text.
    let ts = plain_field("@timestamp");
    Translator::new(code).collect(&ts, view, false)?;
    let ts_leaves = leaves(code);
    let first = "_first";
    code.open(&format!("if length({ts_leaves}) > 0 {{"));
    code.line(&format!("{first} = {}", item(ts_leaves, 0)));
    code.line(&format!(
        "{first} = if is_string({first}) {{ string({first}) ?? \"\" }} else {{ encode_json({first}) }}"
    ));
    code.line(&format!(
        "{alert} = set({alert}, [\"@timestamp\"], {first}) ?? {alert}"
    ));
    code.close();
    investigation_fields(code, rule, view, alert)?;
    // The extension family: the first pattern, in query order, that the record matches.
    let family = "_family";
    code.line(&format!("{family} = null"));
    for clause in family_clauses {
        let mut translator = Translator::new(code);
        translator.collect(&clause.field, view, false)?;
        translator.texts();
        for literal in clause.values.literals() {
            if literal.is_match_any() {
                continue;
            }
            let name = vmext_engine::family_name(literal);
            translator.code().open(&format!("if is_null({family}) {{"));
            translator.literal_into(literal, "_holds");
            translator
                .code()
                .line(&format!("if _holds {{ {family} = {} }}", string(&name)));
            translator.code().close();
        }
    }
    code.line(&format!(
        "if !is_null({family}) {{ {alert} = set({alert}, [\"vmext\", \"extension_family\"], {family}) ?? {alert} }}"
    ));
    let shape = |name: &str| {
        format!("{alert} = set({alert}, [\"vmext\", \"record_shape\"], \"{name}\") ?? {alert}")
    };
    code.line(&format!(
        "if is_null({record}) {{ {} }} else {{ {} }}",
        shape("ecs"),
        shape("azure-raw")
    ));
    Ok(alert)
}

/// The investigation fields into the alert: each field's scalar leaves, one as itself and
/// several as an array, as the engine copies them.
///
/// Each field is first read on its plain path (static reads, with the conditions of
/// [`plain_path_condition`]); one walk in a loop over a table of the fields (path, key table,
/// rounds) serves the fields that are not plain. A walk per field would repeat the same
/// statements a dozen times, and the program's compile time grows with its length; the table's
/// walk reads the view through `get` (a copy per read), which only the rare record with a
/// dotted key or an array on a field's path pays.
fn investigation_fields(
    code: &mut Code,
    rule: &Rule,
    view: &str,
    alert: &str,
) -> Result<(), TranslateError> {
    let (mut table, mut plain, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    for field in &rule.investigation_fields {
        if field == "@timestamp" || owned_by_alert(field) {
            continue;
        }
        let f = plain_field(field);
        let segments = segments(&f)?;
        let rounds: Vec<String> = (1..=segments.len()).map(|r| r.to_string()).collect();
        table.push(format!(
            "[{}, [{}], [{}]]",
            string_array(segments.iter().copied()),
            key_table(&segments).join(", "),
            rounds.join(", ")
        ));
        plain.push(plain_path_condition(view, &segments).unwrap_or_else(|| "true".to_owned()));
        reads.push(format!("flatten([{}])", path(view, &segments)));
    }
    if table.is_empty() {
        return Ok(());
    }
    code.comment("the investigation fields: on their plain paths, or walked (path, keys, rounds)");
    code.line(&format!("_fplain = [{}]", plain.join(", ")));
    code.line(&format!("_fread = [{}]", reads.join(", ")));
    code.open(&format!(
        "for_each([{}]) -> |_fi, _fs| {{",
        table.join(", ")
    ));
    code.line("_cw = []");
    code.open("if bool(get(_fplain, [_fi]) ?? null) ?? false {");
    code.line(
        "for_each(array(get(_fread, [_fi]) ?? null) ?? []) -> |_cm, _cx| { if !is_null(_cx) { _cw = push(_cw, [_cx, 0]) } }",
    );
    code.reopen("} else {");
    code.line("_fkeys = array(get(_fs, [1]) ?? null) ?? []");
    code.line("_fn = length(_fkeys)");
    code.line(&format!("_cw = [[get([{view}], [0]) ?? null, 0]]"));
    walk_rounds(
        code,
        "array(get(_fs, [2]) ?? null) ?? []",
        "_fkeys",
        "_fn",
        None,
    );
    code.close();
    let leaves = "_leaves";
    code.line(&format!("{leaves} = []"));
    code.line(&format!(
        "for_each({}) -> |_ci, _cp| {{ _lx = {}; if !is_null(_lx) && !is_object(_lx) {{ {leaves} = push({leaves}, _lx) }} }}",
        array("_cw"),
        item("_cp", 0)
    ));
    code.line("_fpath = array(get(_fs, [0]) ?? null) ?? []");
    code.line(&format!(
        "if length({leaves}) == 1 {{ {alert} = set({alert}, _fpath, {}) ?? {alert} }} else if length({leaves}) > 1 {{ {alert} = set({alert}, _fpath, {}) ?? {alert} }}",
        item(leaves, 0),
        array(leaves)
    ));
    code.close();
    Ok(())
}

/// A plain field name as the parser would give it.
fn plain_field(name: &str) -> vmext_kql::ast::Field {
    vmext_kql::ast::Field {
        name: name.to_owned(),
        pattern: None,
        quoted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_program_translates() {
        let v = seed_program().unwrap();
        assert!(v.contains(".vmext_alerts = _vmext_alerts"), "{v}");
        assert!(v.contains("\"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE\""));
        assert!(v.contains("\"CUSTOMSCRIPTEXTENSION\""));
        assert!(v.contains("\"e842d39d-ead1-48c6-97f1-6b055476c2f3\""));
        // The program is ASCII: every other character is escaped.
        assert!(v.is_ascii());
    }

    #[test]
    fn family_clauses_are_the_engines() {
        let rule = Rule::from_query(
            "azure.resource.id:*A* and not azure.resource.id:*B* or (x:1 and azure.resource.id:(*C* or */D/*))",
        )
        .unwrap();
        let detector = Detector::new(rule);
        let texts: Vec<String> = detector
            .family_clauses()
            .iter()
            .flat_map(|c| {
                c.values
                    .literals()
                    .into_iter()
                    .map(vmext_engine::family_name)
            })
            .collect();
        assert_eq!(texts, ["A", "C", "D"]);
    }

    #[test]
    fn an_ecs_marker_never_stands_beside_records_in_an_envelope() {
        // The fast path's first step reads an event with an ECS marker as one ECS record.
        for marker in ECS_MARKERS {
            assert_ne!(marker, "records");
            assert!(!SOURCE_METADATA_KEYS.contains(&marker), "{marker}");
        }
    }

    #[test]
    fn the_fast_path_guards_the_walk() {
        let v = seed_program().unwrap();
        let guard = v.find("_vmext_pass = true").unwrap();
        let text = v.find("_vmext_text = encode_json(.)").unwrap();
        let walk = v.find("_vmext_records = get([.records], [0])").unwrap();
        assert!(guard < text && text < walk, "{v}");
        // The dataset the engine may infer is never read by the guard.
        let first_step = &v[guard..text];
        assert!(!first_step.contains("\"dataset\""), "{first_step}");
        assert!(first_step.contains("\"operation_name\""), "{first_step}");
    }

    #[test]
    fn the_hardened_profile_is_refused() {
        let hardened = Detector::seed_in(ProfileName::Hardened);
        let err = program(&hardened).unwrap_err();
        assert_eq!(
            err,
            TranslateError::Profile {
                profile: "hardened"
            }
        );
        assert!(
            err.to_string()
                .starts_with("the hardened profile cannot be translated")
        );
    }

    #[test]
    fn query_fields_include_nested_paths() {
        let q = vmext_kql::parse("a:1 and not (b < 2 or c:{ d:x })").unwrap();
        let mut fields = query_fields(&q);
        fields.sort();
        assert_eq!(fields, ["a", "b", "c", "c.d"]);
    }

    #[test]
    fn rules_reading_unbuildable_raw_fields_are_refused() {
        let rule = Rule::from_query("message:hello").unwrap();
        let err = program(&Detector::new(rule)).unwrap_err();
        assert!(matches!(err, TranslateError::RawField { ref field, .. } if field == "message"));
    }
}
