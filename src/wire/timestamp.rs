//! The two clocks a pass compares: the hub's `created`/`last_activity` fields (ISO 8601, UTC) and
//! the hub's `Date` header. Both are the hub's clock, never ours, so skew does not matter.

use crate::wire::http::Response;

/// Microseconds since the Unix epoch of a JupyterHub timestamp such as
/// `2026-11-29T12:34:56.123456Z` (also without fraction, or with `+00:00`). `None` for anything
/// else: the caller then treats the user as changed, which costs a read, never a membership.
pub fn parse_iso8601_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T').or_else(|| s.split_once(' '))?;
    let mut d = date.splitn(3, '-');
    let year: i64 = digits(d.next()?, 4)?;
    let month: i64 = digits(d.next()?, 2)?;
    let day: i64 = digits(d.next()?, 2)?;
    let time = rest
        .strip_suffix('Z')
        .or_else(|| rest.strip_suffix("+00:00"))
        .unwrap_or(rest);
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut t = hms.splitn(3, ':');
    let hour: i64 = digits(t.next()?, 2)?;
    let minute: i64 = digits(t.next()?, 2)?;
    let second: i64 = digits(t.next()?, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<6}");
            padded[..6].parse::<i64>().ok()?
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros)
}

fn digits(s: &str, n: usize) -> Option<i64> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The hub's clock from an answer's `Date` header, in seconds since the Unix epoch.
pub fn response_date_seconds(resp: &Response) -> Option<i64> {
    let at = httpdate::parse_http_date(resp.header("date")?.trim()).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jupyterhub_timestamps() {
        assert_eq!(parse_iso8601_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601_micros("2026-11-29T12:34:56.123456Z"),
            Some(1_795_955_696_123_456)
        );
        assert_eq!(
            parse_iso8601_micros("2026-11-29T12:34:56.5+00:00"),
            Some(1_795_955_696_500_000)
        );
        assert_eq!(
            parse_iso8601_micros("2000-02-29T00:00:00"),
            Some(951_782_400_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-29T25:00:00Z",
            "2026-11-29T12:34:56.Z",
            "2026-11-29T12:34:56.12a",
            "26-11-29T12:34:56Z",
            "2026-11-29",
        ] {
            assert_eq!(parse_iso8601_micros(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn date_header() {
        let resp = Response {
            status: 200,
            headers: vec![("date".into(), "Sun, 29 Nov 2026 12:34:56 GMT".into())],
            body: vec![],
        };
        assert_eq!(response_date_seconds(&resp), Some(1_795_955_696));
        let none = Response {
            status: 200,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(response_date_seconds(&none), None);
    }
}
