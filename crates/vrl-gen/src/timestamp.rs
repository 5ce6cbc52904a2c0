//! `time` → `@timestamp` in VRL, exactly as `vmext_engine::timestamp::normalise` does it.
//!
//! The accepted forms are written as anchored regular expressions over ASCII digits that take
//! the same paths as the engine's cursor (each variable-width number is followed by a fixed
//! separator, so the regex cannot split a number differently), and the calendar arithmetic is
//! the engine's integer algorithm, step for step. Nothing goes through chrono's parser, whose
//! ranges (offsets, leap seconds, years) differ from the engine's.

use crate::code::Code;

/// ISO 8601 as the engine's `parse_iso` accepts it.
const ISO: &str = r"\A(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt ](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2}))?(?:[.,](?P<f>[0-9]+))?(?:[Zz]|(?P<sign>[+-])(?P<zh>[0-9]{2})(?::?(?P<zm>[0-9]{2})|:)?)?\z";

/// The US forms `M/d/yyyy h:mm:ss[ AM|PM[ zone]]` as the engine's `parse_us` accepts them.
const US: &str = r"\A(?P<mo>[0-9]{1,2})/(?P<d>[0-9]{1,2})/(?P<y>[0-9]{4}) (?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?: (?P<ap>[AaPp][Mm])(?: (?:[Zz]|(?P<sign>[+-])(?P<zh>[0-9]{2})(?::?(?P<zm>[0-9]{2})|:)?)?)?)?\z";

/// Writes statements that set the VRL variable `out` to the normalised timestamp of the string
/// expression `text`, or to `null` when the engine would produce none.
pub fn normalise(code: &mut Code, text: &str, out: &str) {
    let v = |_: &mut Code, stem: &str| format!("_{stem}");
    let (t, m, ok) = (v(code, "tt"), v(code, "tm"), v(code, "tok"));
    let (y, mo, d, h, mi, s, ms, off) = (
        v(code, "ty"),
        v(code, "tmo"),
        v(code, "td"),
        v(code, "th"),
        v(code, "tmi"),
        v(code, "ts"),
        v(code, "tms"),
        v(code, "toff"),
    );
    let int = |name: &str| format!("(parse_int(string({name}) ?? \"\", 10) ?? 0)");
    code.comment("`time` -> `@timestamp`: UTC, milliseconds truncated (the engine's normalise)");
    code.line(&format!("{out} = null"));
    code.line(&format!("{t} = strip_whitespace({text})"));
    code.line(&format!("{m} = parse_regex({t}, r'{ISO}') ?? null"));
    code.line(&format!(
        "if is_null({m}) {{ {m} = parse_regex({t}, r'{US}') ?? null }}"
    ));
    code.open(&format!("if !is_null({m}) {{"));
    code.line(&format!("{ok} = true"));
    code.line(&format!("{y} = {}", int(&format!("{m}.y"))));
    code.line(&format!("{mo} = {}", int(&format!("{m}.mo"))));
    code.line(&format!("{d} = {}", int(&format!("{m}.d"))));
    code.line(&format!("{h} = {}", int(&format!("{m}.h"))));
    code.line(&format!("{mi} = {}", int(&format!("{m}.mi"))));
    code.line(&format!("{s} = {}", int(&format!("{m}.s"))));
    // Fraction: its first three digits, padded with zeros (truncation, not rounding).
    code.line(&format!("{ms} = 0"));
    code.line(&format!(
        "if !is_null({m}.f) {{ {ms} = parse_int(slice((string({m}.f) ?? \"\") + \"00\", 0, 3) ?? \"0\", 10) ?? 0 }}"
    ));
    code.line(&format!("{off} = 0"));
    code.open(&format!("if !is_null({m}.sign) {{"));
    code.line(&format!(
        "{off} = {} * 60 + {}",
        int(&format!("{m}.zh")),
        int(&format!("{m}.zm"))
    ));
    code.line(&format!("if {m}.sign == \"-\" {{ {off} = 0 - {off} }}"));
    code.close();
    // 12-hour clock: hour 1 to 12 only.
    code.open(&format!("if !is_null({m}.ap) {{"));
    code.open(&format!("if {h} < 1 || {h} > 12 {{"));
    code.line(&format!("{ok} = false"));
    code.reopen(&format!(
        "}} else if upcase(string({m}.ap) ?? \"\") == \"AM\" {{"
    ));
    code.line(&format!("{h} = mod({h}, 12)"));
    code.reopen("} else {");
    code.line(&format!("{h} = mod({h}, 12) + 12"));
    code.close();
    code.close();
    // Calendar validity, as the engine's `valid`.
    let dim = v(code, "tdim");
    code.line(&format!("{dim} = 0"));
    code.line(&format!(
        "if includes([1, 3, 5, 7, 8, 10, 12], {mo}) {{ {dim} = 31 }} else if includes([4, 6, 9, 11], {mo}) {{ {dim} = 30 }}"
    ));
    code.line(&format!(
        "if {mo} == 2 {{ if (mod({y}, 4) == 0 && mod({y}, 100) != 0) || mod({y}, 400) == 0 {{ {dim} = 29 }} else {{ {dim} = 28 }} }}"
    ));
    code.line(&format!(
        "if {d} < 1 || {d} > {dim} || {h} >= 24 || {mi} >= 60 || {s} >= 60 {{ {ok} = false }}"
    ));
    code.open(&format!("if {ok} {{"));
    // days_from_civil (H. Hinnant), then seconds since the epoch in UTC. Each quotient is
    // its own statement: nested, the expressions would repeat their operands.
    let (yy, era, yoe, doy, days, secs) = ("_tyy", "_tera", "_tyoe", "_tdoy", "_tdays", "_tsecs");
    code.line(&format!("{yy} = {y}"));
    code.line(&format!("if {mo} <= 2 {{ {yy} = {y} - 1 }}"));
    div(code, era, yy, 400, true);
    code.line(&format!("{yoe} = {yy} - {era} * 400"));
    div(
        code,
        doy,
        &format!("153 * ({mo} + 9 - 12 * to_int({mo} > 2)) + 2"),
        5,
        false,
    );
    code.line(&format!("{doy} = {doy} + {d} - 1"));
    div(code, "_tq4", yoe, 4, false);
    div(code, "_tq100", yoe, 100, false);
    code.line(&format!(
        "{days} = {era} * 146097 + {yoe} * 365 + _tq4 - _tq100 + {doy} - 719468"
    ));
    code.line(&format!(
        "{secs} = {days} * 86400 + {h} * 3600 + {mi} * 60 + {s} - {off} * 60"
    ));
    // civil_from_days and the fixed-width format.
    let (z, era2, doe, yoe2, doy2, mp, dd, mm, yyyy, rem) = (
        "_tz", "_tera2", "_tdoe", "_tyoe2", "_tdoy2", "_tmp", "_tdd", "_tmm", "_tyyyy", "_trem",
    );
    div(code, z, secs, 86400, true);
    code.line(&format!("{rem} = {secs} - {z} * 86400"));
    code.line(&format!("{z} = {z} + 719468"));
    div(code, era2, z, 146097, true);
    code.line(&format!("{doe} = {z} - {era2} * 146097"));
    div(code, "_tq1460", doe, 1460, false);
    div(code, "_tq36524", doe, 36524, false);
    div(code, "_tq146096", doe, 146096, false);
    div(
        code,
        yoe2,
        &format!("{doe} - _tq1460 + _tq36524 - _tq146096"),
        365,
        false,
    );
    div(code, "_tq4", yoe2, 4, false);
    div(code, "_tq100", yoe2, 100, false);
    code.line(&format!("{doy2} = {doe} - (365 * {yoe2} + _tq4 - _tq100)"));
    div(code, mp, &format!("5 * {doy2} + 2"), 153, false);
    div(code, dd, &format!("153 * {mp} + 2"), 5, false);
    code.line(&format!("{dd} = {doy2} - {dd} + 1"));
    code.line(&format!("{mm} = {mp} + 3"));
    code.line(&format!("if {mp} >= 10 {{ {mm} = {mp} - 9 }}"));
    code.line(&format!("{yyyy} = {yoe2} + {era2} * 400"));
    code.line(&format!("if {mm} <= 2 {{ {yyyy} = {yyyy} + 1 }}"));
    div(code, "_thour", rem, 3600, false);
    code.line(&format!("_tmin = mod({rem}, 3600)"));
    div(code, "_tmin", "_tmin", 60, false);
    // Rust's `{:04}` pads after the sign: -1 → `-001`.
    let year = v(code, "tyear");
    let abs_year = pad(code, &format!("abs({yyyy})"), 4);
    let abs_year3 = pad(code, &format!("abs({yyyy})"), 3);
    code.line(&format!("{year} = {abs_year}"));
    code.line(&format!("if {yyyy} < 0 {{ {year} = \"-\" + {abs_year3} }}"));
    let month = pad(code, mm, 2);
    let day = pad(code, dd, 2);
    let hour = pad(code, "_thour", 2);
    let minute = pad(code, "_tmin", 2);
    let second = pad(code, &format!("mod({rem}, 60)"), 2);
    let millis = pad(code, &ms, 3);
    code.line(&format!(
        "{out} = {year} + \"-\" + {month} + \"-\" + {day} + \"T\" + {hour} + \":\" + {minute} + \":\" + {second} + \".\" + {millis} + \"Z\""
    ));
    code.close();
    code.close();
}

/// Statements setting `out` to the quotient of an integer expression by a positive constant:
/// `div_euclid` when `euclid` (the dividend may be negative), plain division otherwise (it is
/// not). VRL's `/` gives a float and `mod` keeps the dividend's sign, so the remainder is made
/// non-negative and the exact quotient converted back to an integer.
fn div(code: &mut Code, out: &str, a: &str, b: i64, euclid: bool) {
    code.line(&format!("_tn = {a}"));
    code.line(&format!("_tr = mod(_tn, {b})"));
    if euclid {
        code.line(&format!("if _tr < 0 {{ _tr = _tr + {b} }}"));
    }
    code.line(&format!("{out} = to_int((_tn - _tr) / {b})"));
}

/// Statements setting a fresh variable to a non-negative integer expression as decimal text,
/// zero-padded to `width`; returns the variable.
fn pad(code: &mut Code, n: &str, width: usize) -> String {
    code.pads += 1;
    let out = format!("_pad{}", code.pads);
    let zeros = "0".repeat(width);
    code.line(&format!("{out} = to_string({n})"));
    code.line(&format!(
        "if length({out}) < {width} {{ {out} = slice(\"{zeros}\" + {out}, length({out})) ?? {out} }}"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_the_arithmetic_are_written_out() {
        let mut code = Code::new();
        normalise(&mut code, "_x", "_out");
        let v = code.finish();
        assert!(v.contains(ISO) && v.contains(US), "{v}");
        // Leap years as the engine counts them, and the Unix epoch offset of the algorithm.
        assert!(v.contains("mod(_ty"), "{v}");
        assert!(v.contains("719468"), "{v}");
        // The regexes use ASCII digits only (`\d` would accept other scripts' digits).
        assert!(!ISO.contains(r"\d") && !US.contains(r"\d"));
    }
}
