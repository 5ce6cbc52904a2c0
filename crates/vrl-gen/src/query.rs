//! KQL → VRL: the engine's parsed query as VRL statements with the engine's semantics.
//!
//! Each clause becomes statements that leave a boolean in a fresh variable. The rules are those
//! of `vmext_kql::eval`, written out:
//!
//! * A field's values are collected by [`collect`]: every value at the dotted path, through
//!   nested objects, dotted keys (`{"a.b": …}`) and mixtures of both, arrays (also of objects)
//!   flattened, in the order the engine visits them (depth first, keys in order).
//! * Values are compared as `keyword`s: whole-value, case-sensitive; numbers and booleans as
//!   their JSON text (`encode_json`); strings longer than 1024 UTF-16 units are not indexed.
//! * Wildcards are anchored `*` patterns, written as `starts_with`, `ends_with`, `contains` and
//!   `find` steps on bytes, exactly as the engine's linear matcher takes them.
//! * `field:*` holds when the field has an indexed value anywhere under it.
//! * Ranges compare numbers when both sides parse as finite numbers, else UTF-8 bytes.
//!
//! Every comparison of a value with a literal goes through [`Translator::texts`] and
//! [`Translator::literal`], the one place where a future set of case-insensitive fields would
//! lower-case both sides.

use vmext_kql::ast::{
    Field, FieldMatch, Literal, LiteralKind, Node, Piece, RangeMatch, RangeOp, ValueList,
};
use vmext_kql::eval::{IGNORE_ABOVE, is_ip_field};

use crate::code::{Code, array, balanced, item, string, string_array};
use crate::error::TranslateError;

/// The largest finite `f64`: VRL has no `is_finite`, so finiteness is `abs(x) <= MAX`.
const F64_MAX: &str = "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.0";

/// Writes the VRL for queries into a [`Code`].
///
/// VRL's compiler takes time quadratic in the number of distinct variable names, so the
/// generated code reuses a few: temporaries of one clause have fixed names (clauses run one
/// after another), and results that must live together are named by nesting depth.
#[derive(Debug)]
pub struct Translator<'c> {
    code: &'c mut Code,
    depth: usize,
}

/// For each number `b` of segments consumed, the keys that consume segments `b..` up to each
/// end, shortest first (the order an object's sorted keys meet them in, since each extends the
/// previous): the table the walk to a field's values reads, one VRL array per `b`.
pub(crate) fn key_table(segments: &[&str]) -> Vec<String> {
    let n = segments.len();
    (0..n)
        .map(|b| {
            let keys: Vec<String> = (b + 1..=n)
                .map(|end| segments.get(b..end).unwrap_or_default().join("."))
                .collect();
            string_array(keys.iter().map(String::as_str))
        })
        .collect()
}

/// The walk's rounds over the work list `_cw` of `[value, segments consumed]` pairs: each round
/// replaces every pair short of `n` segments whose value is an object by the values at the keys
/// `keys[b]` (a VRL array of arrays) lists for its `b`, arrays flattened, nulls dropped. With
/// `rests` (a VRL array of the path's remainders, each ending in `.`), the values of keys that
/// extend the remainder through a dot are collected into [`DESCENDANTS`] on the way.
///
/// `rounds`, `keys` and `n` are VRL expressions: literals for one field, or read from a table
/// of fields.
pub(crate) fn walk_rounds(code: &mut Code, rounds: &str, keys: &str, n: &str, rests: Option<&str>) {
    code.open(&format!("for_each({rounds}) -> |_cr, _cs| {{"));
    code.line("_cn = []");
    code.open(&format!("for_each({}) -> |_ci, _cp| {{", array("_cw")));
    code.line(&format!("_ce = {}", item("_cp", 0)));
    code.line(&format!("_cb = int({}) ?? {n}", item("_cp", 1)));
    code.open(&format!("if _cb >= {n} {{"));
    code.line("_cn = push(_cn, _cp)");
    code.reopen("} else if is_object(_ce) {");
    code.open(&format!(
        "for_each(array(get({keys}, [_cb]) ?? null) ?? []) -> |_cj, _ck| {{"
    ));
    code.open("for_each(flatten([get(_ce, [_ck]) ?? null])) -> |_cm, _cx| {");
    code.line("if !is_null(_cx) { _cn = push(_cn, [_cx, _cb + _cj + 1]) }");
    code.close();
    code.close();
    if let Some(rests) = rests {
        // Keys that extend the rest of the path through a dot: `rests[b]`.
        code.line(&format!(
            "_cq = string(get({rests}, [_cb]) ?? null) ?? \"\""
        ));
        code.open("for_each(object(_ce) ?? {}) -> |_cl, _cx| {");
        code.line(&format!(
            "if starts_with(_cl, _cq) {{ {DESCENDANTS} = push({DESCENDANTS}, _cx) }}"
        ));
        code.close();
    }
    code.close();
    code.close();
    code.line("_cw = _cn");
    code.close();
}

/// Whether [`Translator::plain_match`] can decide a clause: a named field (no pattern), not
/// an `ip` field (whose values compare as addresses, not as text), and values that are not
/// `*`, whose meaning reaches below the field.
pub(crate) fn plain_matchable(m: &FieldMatch) -> bool {
    m.field.pattern.is_none()
        && !is_ip_field(&m.field.name)
        && !m.values.literals().iter().any(|l| l.is_match_any())
}

/// A static path from `root` through `segments`, one quoted segment each: it reads the value it
/// names in place, where passing `root` to a function would copy it.
pub(crate) fn path(root: &str, segments: &[&str]) -> String {
    // The event itself is `.`, and its paths `."a"."b"`.
    let mut out = if root == "." {
        String::new()
    } else {
        root.to_owned()
    };
    for segment in segments {
        out.push('.');
        out.push_str(&string(segment));
    }
    out
}

/// The condition under which the engine's walk to a field finds only the value at the plain
/// path (`root.a.b.c` for `a.b.c`), or `None` when that always holds (one segment).
///
/// The walk leaves the plain path only at an object on it, through a key that joins several of
/// the remaining segments with dots (`"b.c"` at `root.a`), or at an array on it before the
/// last segment (whose objects it enters with the same rest). So: no such key at any object
/// on the path, and no element in an array on the way. An array at the end is flattened as the
/// walk does. Each check is an `exists`, which looks the path up without copying anything.
pub(crate) fn plain_path_condition(root: &str, segments: &[&str]) -> Option<String> {
    let n = segments.len();
    let mut checks = Vec::new();
    for at in 1..n {
        let prefix = segments.get(..at).unwrap_or_default();
        checks.push(format!("!exists({}[0])", path(root, prefix)));
    }
    for at in 0..n {
        let prefix = path(root, segments.get(..at).unwrap_or_default());
        for end in at + 2..=n {
            let key = segments.get(at..end).unwrap_or_default().join(".");
            checks.push(format!("!exists({prefix}.{})", string(&key)));
        }
    }
    balanced(&checks, " && ")
}

/// The dotted path of a field, refusing names that have no faithful lookup here.
pub(crate) fn segments(field: &Field) -> Result<Vec<&str>, TranslateError> {
    if field.pattern.is_some() {
        return Err(TranslateError::FieldPattern {
            field: field.name.clone(),
        });
    }
    let segments: Vec<&str> = field.name.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(TranslateError::EmptySegment {
            field: field.name.clone(),
        });
    }
    Ok(segments)
}

/// The regex of the characters outside the astral planes, written where it is used. A regex
/// literal is compiled where it stands (one to two milliseconds for this class in an
/// unoptimised build), but a variable of the whole program would be copied at every step of VRL's type
/// check, which cost more.
pub const NOT_ASTRAL: &str = r"r'[^\x{10000}-\x{10FFFF}]'";

/// Whether a text is indexed by a `keyword` field: at most 1024 UTF-16 units. UTF-8 length
/// bounds UTF-16 length from above, so only long strings count characters; astral characters
/// (four UTF-8 bytes) are two UTF-16 units each.
fn indexed_condition(s: &str) -> String {
    format!(
        "length({s}) <= {IGNORE_ABOVE} || strlen({s}) + strlen(replace({s}, {NOT_ASTRAL}, \"\")) <= {IGNORE_ABOVE}"
    )
}

/// Pieces with neighbouring stars and texts merged, so that prefix, middle and suffix are
/// well defined.
fn normalise(pieces: &[Piece]) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for piece in pieces {
        match (out.last_mut(), piece) {
            (Some(Piece::Star), Piece::Star) => {}
            (Some(Piece::Text(t)), Piece::Text(more)) => t.push_str(more),
            (_, Piece::Text(t)) if t.is_empty() => {}
            _ => out.push(piece.clone()),
        }
    }
    out
}

/// The variables one collection leaves: every non-array value at the path (scalars, objects,
/// nulls) in engine order, and the values under keys that extend the path through a dot
/// (`{"a.b.c": …}` for `a.b`), part of the field's object for `field:*`.
pub(crate) const VALUES: &str = "_cv";
const DESCENDANTS: &str = "_cd";
/// Set by [`Translator::collect`] for `field:*` when a value on the plain path is indexed.
const SETTLED: &str = "_cy";
/// The indexed texts of the collected values.
pub(crate) const TEXTS: &str = "_ct";

impl<'c> Translator<'c> {
    /// A translator writing into `code`.
    pub fn new(code: &'c mut Code) -> Translator<'c> {
        Translator { code, depth: 0 }
    }

    /// The code being written.
    pub(crate) fn code(&mut self) -> &mut Code {
        self.code
    }

    /// Statements deciding `node` on the object in VRL variable `root`; returns the variable
    /// holding the verdict (valid until the next translation).
    pub fn node(&mut self, node: &Node, root: &str) -> Result<String, TranslateError> {
        let out = format!("_q{}", self.depth);
        self.depth += 1;
        let result = self.node_into(node, root, &out);
        self.depth -= 1;
        result.map(|()| out)
    }

    fn node_into(&mut self, node: &Node, root: &str, out: &str) -> Result<(), TranslateError> {
        match node {
            Node::MatchAll => self.code.line(&format!("{out} = true")),
            Node::And(items) | Node::Or(items) => {
                // Later clauses run only while they can still change the result, as `&&` and
                // `||` would: a record rejected by the first clause costs one clause.
                let and = matches!(node, Node::And(_));
                self.code.line(&format!("{out} = {and}"));
                for item in items {
                    self.code
                        .open(&format!("if {}{out} {{", if and { "" } else { "!" }));
                    let v = self.node(item, root)?;
                    self.code.line(&format!("{out} = {v}"));
                    self.code.close();
                }
            }
            Node::Not(inner) => {
                let v = self.node(inner, root)?;
                self.code.line(&format!("{out} = !{v}"));
            }
            Node::Match(m) => {
                let exists = m.values.literals().iter().any(|l| l.is_match_any());
                self.collect(&m.field, root, exists)?;
                self.texts();
                let ip = is_ip_field(&m.field.name);
                let v = self.list(&m.values, &m.field, exists, ip, 0)?;
                self.code.line(&format!("{out} = {v}"));
            }
            Node::FreeText(literal) => {
                return Err(TranslateError::FreeText {
                    text: literal.text(),
                });
            }
            Node::Range(r) => self.range(r, root, out)?,
            Node::Nested(n) => {
                self.collect(&n.field, root, false)?;
                let object = format!("_o{}", self.depth);
                self.code.line(&format!("{out} = false"));
                self.code.open(&format!(
                    "for_each({}) -> |_oi, {object}| {{",
                    array(VALUES)
                ));
                self.code
                    .open(&format!("if !{out} && is_object({object}) {{"));
                let v = self.node(&n.query, &object)?;
                self.code.line(&format!("{out} = {v}"));
                self.code.close();
                self.code.close();
            }
        }
        Ok(())
    }

    /// Collects the values of `field` in the object `root` into [`VALUES`] (and, when asked,
    /// the dotted descendants into `_cd`).
    ///
    /// The engine walks the path depth first: at an object, each key that equals the rest of
    /// the path, or is a dotted prefix of it, leads on with the path after it; arrays are
    /// entered with the same rest. Here a work list of `[value, segments consumed]` pairs is
    /// expanded in place once per segment (each step consumes at least one), which visits the
    /// same values in the same order without recursion, which VRL does not have. The keys to
    /// try after `b` consumed segments are a table in the program (`keys[b]`), so the code is
    /// the same size whatever the path.
    pub(crate) fn collect(
        &mut self,
        field: &Field,
        root: &str,
        descendants: bool,
    ) -> Result<(), TranslateError> {
        let segments = segments(field)?;
        let n = segments.len();
        let keys = key_table(&segments);
        let rests: Vec<String> = (0..n)
            .map(|b| {
                string(&format!(
                    "{}.",
                    segments.get(b..).unwrap_or_default().join(".")
                ))
            })
            .collect();
        self.code.comment(&format!("values of `{}`", field.name));
        // The common shape first: no dotted key and no array on the way to the value, so the
        // value is the plain path's, read in place. For `field:*` the dotted descendants
        // matter only when no value is indexed, so an indexed value read on the plain path
        // settles it; otherwise the walk below runs.
        let plain = plain_path_condition(root, &segments);
        let read = format!("flatten([{}])", path(root, &segments));
        self.code.line(&format!("{VALUES} = []"));
        if descendants {
            self.code.line(&format!("{DESCENDANTS} = []"));
            self.code.line(&format!("{SETTLED} = false"));
            if let Some(condition) = &plain {
                self.code.open(&format!("if {condition} {{"));
            }
            self.code
                .open(&format!("for_each({read}) -> |_cm, _cx| {{"));
            self.code.open("if !is_null(_cx) {");
            self.code.line(&format!("{VALUES} = push({VALUES}, _cx)"));
            self.code.line(&format!(
                "if is_integer(_cx) || is_float(_cx) || is_boolean(_cx) || (is_string(_cx) && ({})) {{ {SETTLED} = true }}",
                indexed_condition("(string(_cx) ?? \"\")")
            ));
            self.code.close();
            self.code.close();
            if plain.is_some() {
                self.code.close();
            }
            self.code.open(&format!("if !{SETTLED} {{"));
        } else {
            if let Some(condition) = &plain {
                self.code.open(&format!("if {condition} {{"));
            }
            self.code.line(&format!(
                "for_each({read}) -> |_cm, _cx| {{ if !is_null(_cx) {{ {VALUES} = push({VALUES}, _cx) }} }}"
            ));
            if plain.is_none() {
                return Ok(());
            }
            self.code.reopen("} else {");
        }
        // The first step reads the root in place (putting it in the work list would copy the
        // whole record); later steps expand the work list.
        self.code.line("_cw = []");
        // Static paths on the root variable: a path reads only the value it names, where
        // passing the variable to a function would copy the whole record first.
        for end in 1..=n {
            let key = segments.get(..end).unwrap_or_default().join(".");
            self.code.line(&format!(
                "for_each(flatten([{root}.{}])) -> |_cm, _cx| {{ if !is_null(_cx) {{ _cw = push(_cw, [_cx, {end}]) }} }}",
                string(&key)
            ));
        }
        if descendants {
            self.code.open(&format!(
                "for_each(object({root}) ?? {{}}) -> |_cl, _cx| {{"
            ));
            self.code.line(&format!(
                "if starts_with(_cl, {}) {{ {DESCENDANTS} = push({DESCENDANTS}, _cx) }}",
                rests.first().map_or("\"\"", String::as_str)
            ));
            self.code.close();
        }
        if n > 1 {
            let rounds: Vec<String> = (1..n).map(|r| r.to_string()).collect();
            let rests = format!("[{}]", rests.join(", "));
            walk_rounds(
                self.code,
                &format!("[{}]", rounds.join(", ")),
                &format!("[{}]", keys.join(", ")),
                &n.to_string(),
                descendants.then_some(rests.as_str()),
            );
        }
        self.code.line(&format!("{VALUES} = []"));
        self.code.line(&format!(
            "for_each({}) -> |_ci, _cp| {{ {VALUES} = push({VALUES}, {}) }}",
            array("_cw"),
            item("_cp", 0)
        ));
        self.code.close();
        Ok(())
    }

    /// `field:values` on the object at `root`, decided only when the field's value lies on its
    /// plain path ([`plain_path_condition`]); `out` is left alone otherwise. For a clause
    /// [`plain_matchable`] admits.
    ///
    /// For a guard that must be cheap on the records that cannot match: a handful of
    /// `exists` and one read, never a walk.
    pub(crate) fn plain_match(
        &mut self,
        m: &FieldMatch,
        root: &str,
        out: &str,
    ) -> Result<(), TranslateError> {
        let segments = segments(&m.field)?;
        if let Some(condition) = plain_path_condition(root, &segments) {
            self.code.open(&format!("if {condition} {{"));
        } else {
            self.code.open("if true {");
        }
        // A string, the common case, is compared at once; no value at all matches nothing;
        // anything else (an array, a number…) leaves the clause undecided here.
        let value = "_gx";
        self.code
            .line(&format!("{value} = {}", path(root, &segments)));
        self.code.open(&format!("if is_string({value}) {{"));
        if let ValueList::One(literal) = &m.values
            && let LiteralKind::Text(text) = &literal.kind
        {
            // Equal to the literal, or not: a text longer than `ignore_above` is not indexed,
            // so equality can only admit more than the engine does, never less.
            self.code
                .line(&format!("{out} = {value} == {}", string(text)));
        } else {
            self.code.line(&format!("_gs = string({value}) ?? \"\""));
            self.code.line(&format!(
                "{TEXTS} = if {} {{ [_gs] }} else {{ [] }}",
                indexed_condition("_gs")
            ));
            let v = self.list(&m.values, &m.field, false, false, 0)?;
            self.code.line(&format!("{out} = {v}"));
        }
        self.code.reopen(&format!("}} else if is_null({value}) {{"));
        self.code.line(&format!("{out} = false"));
        self.code.close();
        self.code.close();
        Ok(())
    }

    /// The indexed texts of [`VALUES`] into [`TEXTS`]: strings within `ignore_above`, and
    /// numbers and booleans as their JSON text. Objects and nulls have none.
    pub(crate) fn texts(&mut self) {
        self.code.line(&format!("{TEXTS} = []"));
        self.code
            .open(&format!("for_each({}) -> |_ti, _tx| {{", array(VALUES)));
        self.code.open("if is_string(_tx) {");
        self.code.line("_ts = string(_tx) ?? \"\"");
        self.code.line(&format!(
            "if {} {{ {TEXTS} = push({TEXTS}, _ts) }}",
            indexed_condition("_ts")
        ));
        self.code
            .reopen("} else if is_integer(_tx) || is_float(_tx) || is_boolean(_tx) {");
        self.code
            .line(&format!("{TEXTS} = push({TEXTS}, encode_json(_tx))"));
        self.code.close();
        self.code.close();
    }

    /// `field:*`: an indexed value at the path, or anywhere inside an object there.
    fn exists(&mut self, descendants: bool, out: &str) {
        self.code.line(&format!("{out} = length({TEXTS}) > 0"));
        let inside = if descendants {
            format!("[{}, {}]", array(VALUES), array(DESCENDANTS))
        } else {
            format!("[{}]", array(VALUES))
        };
        self.code.open(&format!("if !{out} {{"));
        self.code.open(&format!(
            "map_values({inside}, recursive: true) -> |_xy| {{"
        ));
        self.code.open("if is_string(_xy) {");
        self.code.line("_xs = string(_xy) ?? \"\"");
        self.code.line(&format!(
            "if {} {{ {out} = true }}",
            indexed_condition("_xs")
        ));
        self.code
            .reopen("} else if is_integer(_xy) || is_float(_xy) || is_boolean(_xy) {");
        self.code.line(&format!("{out} = true"));
        self.code.close();
        self.code.line("_xy");
        self.code.close();
        self.code.close();
    }

    /// A value list on the texts in [`TEXTS`]; returns the variable holding its result.
    fn list(
        &mut self,
        list: &ValueList,
        field: &Field,
        descendants: bool,
        ip: bool,
        depth: usize,
    ) -> Result<String, TranslateError> {
        let out = format!("_l{depth}");
        match list {
            ValueList::One(literal) => {
                if literal.is_match_any() {
                    self.exists(descendants, &out);
                    return Ok(out);
                }
                if ip && let LiteralKind::Text(t) = &literal.kind {
                    return Err(TranslateError::IpTerm {
                        field: field.name.clone(),
                        value: t.clone(),
                    });
                }
                self.literal_into(literal, &out);
            }
            ValueList::Or(items) | ValueList::And(items) => {
                let and = matches!(list, ValueList::And(_));
                self.code.line(&format!("{out} = {and}"));
                for item in items {
                    let v = self.list(item, field, descendants, ip, depth + 1)?;
                    let op = if and { "&&" } else { "||" };
                    self.code.line(&format!("{out} = {out} {op} {v}"));
                }
            }
            ValueList::Not(inner) => {
                let v = self.list(inner, field, descendants, ip, depth + 1)?;
                self.code.line(&format!("{out} = !{v}"));
            }
        }
        Ok(out)
    }

    /// Whether some text in [`TEXTS`] equals (or, for a pattern, matches) `literal`; the result
    /// goes into `out`.
    pub(crate) fn literal_into(&mut self, literal: &Literal, out: &str) {
        match &literal.kind {
            LiteralKind::Text(t) => self
                .code
                .line(&format!("{out} = includes({TEXTS}, {})", string(t))),
            LiteralKind::Bool(b) => self
                .code
                .line(&format!("{out} = includes({TEXTS}, \"{b}\")")),
            LiteralKind::Null => self
                .code
                .line(&format!("{out} = includes({TEXTS}, \"null\")")),
            LiteralKind::Wildcard(pieces) => {
                self.code.line(&format!("{out} = false"));
                self.code
                    .open(&format!("for_each({}) -> |_pi, _ps| {{", array(TEXTS)));
                self.code.open(&format!("if !{out} {{"));
                self.code.line("_pt = string(_ps) ?? \"\"");
                self.wildcard(&normalise(pieces), "_pt", out);
                self.code.close();
                self.code.close();
            }
        }
    }

    /// An anchored pattern on the string variable `s`, as the engine's matcher takes it: the
    /// leading literal is a prefix, the trailing literal a suffix that must not overlap it,
    /// and each literal between them the leftmost occurrence after the previous one.
    fn wildcard(&mut self, pieces: &[Piece], s: &str, out: &str) {
        let mut middle = pieces;
        let mut prefix = "";
        let mut suffix = "";
        if let [Piece::Text(first), rest @ ..] = middle {
            prefix = first;
            middle = rest;
        }
        if let [rest @ .., Piece::Text(last)] = middle {
            suffix = last;
            middle = rest;
        }
        let middles: Vec<&str> = middle
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                Piece::Star => None,
            })
            .collect();
        let mut conditions = Vec::new();
        if !prefix.is_empty() {
            conditions.push(format!("starts_with({s}, {})", string(prefix)));
        }
        if !suffix.is_empty() {
            conditions.push(format!("ends_with({s}, {})", string(suffix)));
        }
        if !prefix.is_empty() && !suffix.is_empty() {
            conditions.push(format!("length({s}) >= {}", prefix.len() + suffix.len()));
        }
        if let [only] = middles.as_slice()
            && prefix.is_empty()
            && suffix.is_empty()
        {
            conditions.push(format!("contains({s}, {})", string(only)));
        }
        let head = if conditions.is_empty() {
            "true".to_owned()
        } else {
            conditions.join(" && ")
        };
        self.code.line(&format!("{out} = {head}"));
        if middles.is_empty() || (middles.len() == 1 && prefix.is_empty() && suffix.is_empty()) {
            return;
        }
        // The window between prefix and suffix, then each literal in turn.
        self.code.open(&format!("if {out} {{"));
        self.code.line(&format!(
            "_pw = slice({s}, {}, length({s}) - {}) ?? \"\"",
            prefix.len(),
            suffix.len()
        ));
        for piece in &middles {
            // `find` gives null when the text is absent, but VRL releases type it differently
            // (integer only, as Vector 0.57 pins it; integer or null in crates.io `vrl` 0.38):
            // through `get` the value is untyped, so the same code compiles in both, and a
            // release that gave -1 would be read right as well.
            self.code.line(&format!(
                "_pa = int(get([find(_pw, {})], [0]) ?? null) ?? -1",
                string(piece)
            ));
            self.code.open("if _pa < 0 {");
            self.code.line(&format!("{out} = false"));
            self.code.reopen("} else {");
            self.code
                .line(&format!("_pw = slice(_pw, _pa + {}) ?? \"\"", piece.len()));
            self.code.close();
        }
        self.code.close();
    }

    /// `field < value` and the other comparisons, as the engine decides them.
    fn range(&mut self, r: &RangeMatch, root: &str, out: &str) -> Result<(), TranslateError> {
        self.collect(&r.field, root, false)?;
        self.texts();
        let bound = r.value.text();
        let op = match r.op {
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
        };
        let numeric_bound = bound
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .is_some();
        self.code.line(&format!("{out} = false"));
        self.code
            .open(&format!("for_each({}) -> |_ri, _rx| {{", array(TEXTS)));
        self.code.line("_rs = string(_rx) ?? \"\"");
        let text_compare = format!("_rs {op} {}", string(&bound));
        if numeric_bound {
            // Rust's `f64` parser on trimmed text, as the engine; NaN is refused by VRL and
            // infinities fail the finiteness test, both falling back to text as in the engine.
            self.code
                .line(&format!("_rb = to_float({}) ?? 0.0", string(bound.trim())));
            self.code
                .line("_rf = to_float(strip_whitespace(_rs)) ?? null");
            self.code.open(&format!(
                "if is_float(_rf) && abs(float(_rf) ?? 0.0) <= {F64_MAX} {{"
            ));
            self.code.line(&format!(
                "if (float(_rf) ?? 0.0) {op} _rb {{ {out} = true }}"
            ));
            self.code.reopen("} else {");
            self.code
                .line(&format!("if {text_compare} {{ {out} = true }}"));
            self.code.close();
        } else {
            self.code
                .line(&format!("if {text_compare} {{ {out} = true }}"));
        }
        self.code.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VRL for a whole query, deciding on the object in `.`.
    fn vrl(query: &str) -> Result<String, TranslateError> {
        let root = vmext_kql::parse(query).unwrap();
        let mut code = Code::new();
        let verdict = Translator::new(&mut code).node(&root, "_doc")?;
        code.line(&verdict);
        Ok(code.finish())
    }

    #[test]
    fn exact_values_compare_indexed_texts() {
        let v = vrl("a:hello").unwrap();
        assert!(v.contains(r#"includes(_ct"#), "{v}");
        assert!(v.contains(r#""hello")"#), "{v}");
        // ignore_above: long strings are not indexed.
        assert!(v.contains("length(_ts)"), "{v}");
        assert!(v.contains("<= 1024"), "{v}");
        // numbers and booleans compare as their JSON text.
        assert!(v.contains("encode_json("), "{v}");
    }

    #[test]
    fn typed_literals_compare_as_text() {
        assert!(vrl("a:true").unwrap().contains(r#", "true")"#));
        assert!(vrl("a:null").unwrap().contains(r#", "null")"#));
        assert!(vrl("a:01").unwrap().contains(r#", "01")"#));
    }

    #[test]
    fn wildcards_become_prefix_suffix_and_contains_steps() {
        let contains = vrl("a:*MID*").unwrap();
        assert!(contains.contains(r#"contains(_pt"#), "{contains}");
        assert!(contains.contains(r#""MID")"#), "{contains}");
        let prefix = vrl("a:pre*").unwrap();
        assert!(prefix.contains(r#"starts_with("#), "{prefix}");
        assert!(!prefix.contains("ends_with("), "{prefix}");
        let both = vrl("a:pre*suf").unwrap();
        assert!(both.contains(r#"ends_with("#), "{both}");
        // prefix and suffix must not overlap: `ab*ba` does not match `aba`.
        assert!(both.contains(">= 6"), "{both}");
        let several = vrl("a:p*m1*m2*s").unwrap();
        assert!(several.contains(r#"find(_pw"#), "{several}");
        assert_eq!(several.matches("find(").count(), 2, "{several}");
        // Escaped stars are literal text, quoted values never patterns.
        let literal = vrl(r#"a:"x*y""#).unwrap();
        assert!(literal.contains(r#""x*y")"#), "{literal}");
    }

    #[test]
    fn value_lists_combine_literals() {
        let or = vrl("a:(x or y)").unwrap();
        assert!(or.contains(" || "), "{or}");
        let and = vrl("a:(x and not y)").unwrap();
        assert!(and.contains(" && "), "{and}");
        assert!(and.contains(" = !_l"), "{and}");
    }

    #[test]
    fn boolean_operators_short_circuit() {
        let v = vrl("a:x and b:y or not c:z").unwrap();
        // `or` of (`and` of two clauses) and a negated clause: each later clause is guarded.
        assert!(v.contains("if _q1 {"), "{v}");
        assert!(v.contains("if !_q0 {"), "{v}");
        assert!(v.contains("_q1 = !_q2"), "{v}");
    }

    #[test]
    fn exists_looks_inside_objects_and_dotted_descendants() {
        let v = vrl("a.b:*").unwrap();
        assert!(v.contains("map_values("), "{v}");
        assert!(v.contains("recursive: true"), "{v}");
        assert!(v.contains(r#"starts_with(_cl, "a.b.")"#), "{v}");
        assert!(v.contains(r#"starts_with(_cl, _cq)"#), "{v}");
        assert!(v.contains(r#"["a.b.", "b."]"#), "{v}");
    }

    #[test]
    fn dotted_paths_try_every_key_split_in_order() {
        let v = vrl("a.b.c:x").unwrap();
        // keys[b]: every key that consumes segments b.., shortest first.
        assert!(
            v.contains(r#"[["a", "a.b", "a.b.c"], ["b", "b.c"], ["c"]]"#),
            "{v}"
        );
        assert!(v.contains("for_each([1, 2])"), "{v}");
        // Arrays at any level are flattened.
        assert!(v.contains("flatten([get("), "{v}");
    }

    #[test]
    fn ranges_compare_numbers_or_bytes() {
        let numeric = vrl("a >= 10").unwrap();
        assert!(numeric.contains("to_float("), "{numeric}");
        assert!(numeric.contains(">= _rb"), "{numeric}");
        assert!(numeric.contains(r#">= "10""#), "{numeric}");
        let text = vrl("a < m").unwrap();
        assert!(!text.contains("to_float("), "{text}");
        assert!(text.contains(r#"< "m""#), "{text}");
    }

    #[test]
    fn nested_queries_run_on_each_object() {
        let v = vrl("a:{ b:x and c:y }").unwrap();
        assert!(v.contains("is_object(_o1)"), "{v}");
        assert!(v.contains(r#"flatten([_o1."b"])"#), "{v}");
    }

    #[test]
    fn match_all_and_not() {
        assert!(vrl("*").unwrap().contains("= true"));
        assert!(vrl("not a:x").unwrap().contains("_q0 = !_q1"));
    }

    #[test]
    fn refusals_name_the_construct() {
        assert_eq!(
            vrl("hello").unwrap_err(),
            TranslateError::FreeText {
                text: "hello".into()
            }
        );
        assert_eq!(
            vrl("a.*:x").unwrap_err(),
            TranslateError::FieldPattern {
                field: "a.*".into()
            }
        );
        assert_eq!(
            vrl(r#""a..b":x"#).unwrap_err(),
            TranslateError::EmptySegment {
                field: "a..b".into()
            }
        );
        assert_eq!(
            vrl("source.ip:10.0.0.0/8").unwrap_err(),
            TranslateError::IpTerm {
                field: "source.ip".into(),
                value: "10.0.0.0/8".into()
            }
        );
        // A pattern or existence test on an ip field compares text, as the engine does.
        assert!(vrl("source.ip:10.*").is_ok());
        assert!(vrl("source.ip:*").is_ok());
        // Refusals inside lists and nested queries surface too.
        assert!(vrl("a:{ b:x or hello }").is_err());
        for err in [vrl("hello"), vrl("a.*:x"), vrl("source.ip:1.2.3.4")] {
            assert!(
                err.unwrap_err()
                    .to_string()
                    .contains("cannot be translated")
            );
        }
    }
}
