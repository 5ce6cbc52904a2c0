//! `time` → `@timestamp` as Elastic's azure pipeline writes it.
//!
//! The pipeline's date processor accepts ISO 8601 and the US forms `M/d/yyyy h:mm:ss a XXX`,
//! `M/d/yyyy h:mm:ss a` and `M/d/yyyy H:mm:ss`; a time without a zone is UTC. The result is UTC
//! with millisecond precision, truncated (`.6816663Z` becomes `.681Z`).

/// Normalises an Azure `time` value to `YYYY-MM-DDTHH:MM:SS.mmmZ`, or `None` if it is in none of
/// the accepted formats.
pub fn normalise(text: &str) -> Option<String> {
    let t = text.trim();
    let parts = parse_iso(t).or_else(|| parse_us(t))?;
    Some(parts.to_utc_string())
}

#[derive(Debug, Clone, Copy)]
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    /// Offset east of UTC in minutes.
    offset_minutes: i64,
}

impl Parts {
    fn valid(self) -> Option<Self> {
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if is_leap(self.year) => 29,
            2 => 28,
            _ => return None,
        };
        (self.day >= 1
            && self.day <= days_in_month
            && self.hour < 24
            && self.minute < 60
            && self.second < 60)
            .then_some(self)
    }

    fn to_utc_string(self) -> String {
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_minutes * 60;
        format_unix(seconds, self.millis)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for whole seconds since the Unix epoch plus milliseconds.
pub fn format_unix(seconds: i64, millis: u32) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60,
        millis
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A cursor over ASCII text.
struct Cursor<'t> {
    bytes: &'t [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        while self.pos - start < max && self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let len = self.pos - start;
        if len < min {
            return None;
        }
        std::str::from_utf8(self.bytes.get(start..self.pos)?)
            .ok()?
            .parse()
            .ok()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Fraction digits after a `.`: milliseconds, truncated.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let digits = self.bytes.get(start..self.pos)?;
        if digits.is_empty() {
            return None;
        }
        let mut ms = 0;
        for i in 0..3 {
            ms = ms * 10 + digits.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
        Some(ms)
    }

    /// `Z`, `±HH:MM`, `±HHMM`, `±HH`, or nothing (UTC).
    fn zone(&mut self) -> Option<i64> {
        if self.done() || self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let hours = i64::from(self.number(2, 2)?);
        self.eat(b':');
        let minutes = if self.done() {
            0
        } else {
            i64::from(self.number(2, 2)?)
        };
        Some(sign * (hours * 60 + minutes))
    }
}

fn parse_iso(t: &str) -> Option<Parts> {
    let mut c = Cursor {
        bytes: t.as_bytes(),
        pos: 0,
    };
    let year = i64::from(c.number(4, 4)?);
    c.eat(b'-').then_some(())?;
    let month = c.number(2, 2)?;
    c.eat(b'-').then_some(())?;
    let day = c.number(2, 2)?;
    (c.eat(b'T') || c.eat(b't') || c.eat(b' ')).then_some(())?;
    let hour = c.number(1, 2)?;
    c.eat(b':').then_some(())?;
    let minute = c.number(2, 2)?;
    let second = if c.eat(b':') { c.number(2, 2)? } else { 0 };
    let millis = if c.eat(b'.') || c.eat(b',') {
        c.fraction()?
    } else {
        0
    };
    let offset_minutes = c.zone()?;
    c.done().then_some(())?;
    Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        millis,
        offset_minutes,
    }
    .valid()
}

fn parse_us(t: &str) -> Option<Parts> {
    let mut c = Cursor {
        bytes: t.as_bytes(),
        pos: 0,
    };
    let month = c.number(1, 2)?;
    c.eat(b'/').then_some(())?;
    let day = c.number(1, 2)?;
    c.eat(b'/').then_some(())?;
    let year = i64::from(c.number(4, 4)?);
    c.eat(b' ').then_some(())?;
    let mut hour = c.number(1, 2)?;
    c.eat(b':').then_some(())?;
    let minute = c.number(2, 2)?;
    c.eat(b':').then_some(())?;
    let second = c.number(2, 2)?;
    let mut offset_minutes = 0;
    if c.eat(b' ') {
        let rest = t.get(c.pos..)?;
        let (meridiem, after) = rest.split_at_checked(2)?;
        match meridiem.to_ascii_uppercase().as_str() {
            "AM" if (1..=12).contains(&hour) => hour %= 12,
            "PM" if (1..=12).contains(&hour) => hour = hour % 12 + 12,
            _ => return None,
        }
        c.pos += 2;
        if !after.is_empty() {
            c.eat(b' ').then_some(())?;
            offset_minutes = c.zone()?;
        }
    }
    c.done().then_some(())?;
    Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        millis: 0,
        offset_minutes,
    }
    .valid()
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn formats_of_elastic_pipeline_tests() {
        let same = "2007-01-09T09:41:00.000Z";
        for t in [
            "01/09/2007 09:41:00",
            "1/9/2007 09:41:00",
            "01/09/2007 09:41:00 AM",
            "1/9/2007 9:41:00 AM",
            "1/9/2007 10:41:00 AM +01:00",
            "2007-01-09T09:41:00",
            "2007-01-09T11:41:00+02:00",
        ] {
            assert_eq!(normalise(t).as_deref(), Some(same), "{t}");
        }
        assert_eq!(
            normalise("2007-01-09T09:41:00.6816663Z").as_deref(),
            Some("2007-01-09T09:41:00.681Z")
        );
        assert_eq!(
            normalise("2019-10-24T00:13:46.3554259Z").as_deref(),
            Some("2019-10-24T00:13:46.355Z")
        );
        assert_eq!(
            normalise("1/1/2020 12:30:00 AM -01:00").as_deref(),
            Some("2020-01-01T01:30:00.000Z")
        );
        assert_eq!(
            normalise("2020-03-01T00:30:00+01:00").as_deref(),
            Some("2020-02-29T23:30:00.000Z")
        );
        for bad in [
            "",
            "yesterday",
            "2020-13-01T00:00:00Z",
            "2/30/2020 10:00:00",
            "13/1/2020 1:00:00 PM",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
    }
}
