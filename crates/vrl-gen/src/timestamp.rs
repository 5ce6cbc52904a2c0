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
    // its own statement (see `div`).
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
    // The text in UTC: chrono's (`format_timestamp`) for the years 0 to 9999. An offset can
    // carry the first and last days of those into the years -1 and 10000, which chrono writes
    // otherwise than the engine's `{:04}` (`-0001` for `-001`, `+10000` for `10000`): those
    // are formatted 400 years (146,097 days, one Gregorian cycle) nearer, which changes
    // nothing but the year, and given their own year back.
    let (shift, text) = ("_tshift", "_tf");
    code.line(&format!("{shift} = 0"));
    code.line(&format!(
        "if {secs} < {YEAR_0} {{ {shift} = {CYCLE} }} else if {secs} >= {YEAR_10000} {{ {shift} = 0 - {CYCLE} }}"
    ));
    code.line(&format!(
        "{text} = format_timestamp(from_unix_timestamp({secs} + {shift}) ?? null, \"%Y-%m-%dT%H:%M:%S\") ?? \"\""
    ));
    code.line(&format!(
        "if {shift} > 0 {{ {text} = \"-001\" + (slice({text}, 4) ?? \"\") }} else if {shift} < 0 {{ {text} = \"10000\" + (slice({text}, 4) ?? \"\") }}"
    ));
    // Milliseconds in three digits: 1000 more, less the leading 1.
    code.line(&format!(
        "{out} = {text} + \".\" + (slice(to_string({ms} + 1000), 1) ?? \"\") + \"Z\""
    ));
    code.close();
    code.close();
}

/// A statement setting `out` to the quotient of an integer expression by a positive constant:
/// `div_euclid` when `euclid` (the dividend may be negative), plain division otherwise (it is
/// not). VRL's `/` gives a float and `mod` keeps the dividend's sign, so the remainder is made
/// non-negative (`mod(mod(a, b) + b, b)`) and the exact quotient converted back to an integer.
/// One statement, not one per step: VRL's compiler copies every variable in scope at each
/// step of its type check, and a temporary more or a statement more costs it all of them.
fn div(code: &mut Code, out: &str, a: &str, b: i64, euclid: bool) {
    let remainder = if euclid {
        format!("mod(mod({a}, {b}) + {b}, {b})")
    } else {
        format!("mod({a}, {b})")
    };
    code.line(&format!("{out} = to_int(({a} - {remainder}) / {b})"));
}

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z (proleptic Gregorian).
const YEAR_0: i64 = -62_167_219_200;
/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z.
const YEAR_10000: i64 = 253_402_300_800;
/// Seconds in 400 Gregorian years (146,097 days).
const CYCLE: i64 = 12_622_780_800;

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

    #[test]
    fn the_year_bounds_and_the_cycle_are_the_engines() {
        use vmext_engine::timestamp::format_unix;
        assert_eq!(format_unix(YEAR_0, 0), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_unix(YEAR_0 - 1, 0), "-001-12-31T23:59:59.000Z");
        assert_eq!(format_unix(YEAR_10000, 0), "10000-01-01T00:00:00.000Z");
        assert_eq!(format_unix(YEAR_0 + CYCLE, 0), "0400-01-01T00:00:00.000Z");
        assert_eq!(
            format_unix(YEAR_10000 - CYCLE, 0),
            "9600-01-01T00:00:00.000Z"
        );
    }
}
