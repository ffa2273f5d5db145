//! When passes run: the interval with jitter, backoff after failures, and optional allowed
//! dates and weekly windows in a time zone. Pure functions of the current time.

use anyhow::{anyhow, bail, Result};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use std::time::Duration;

/// A weekly window such as `Mon-Fri 02:00-04:00`, `Sat+Sun 00:00-24:00` or `Sun 22:00-02:00`
/// (an end before the start runs past midnight into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyWindow {
    pub days: Vec<Weekday>,
    pub start_minute: u16,
    pub end_minute: u16,
}

impl std::fmt::Display for WeeklyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<String> = self
            .days
            .iter()
            .map(|d| format!("{d:?}").chars().take(3).collect())
            .collect();
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(
            f,
            "{} {}-{}",
            days.join("+"),
            hm(self.start_minute),
            hm(self.end_minute)
        )
    }
}

fn weekday(s: &str) -> Result<Weekday> {
    Ok(match s.to_ascii_lowercase().get(..3).unwrap_or("") {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => bail!("{s:?} is not a weekday (Mon, Tue, …)"),
    })
}

fn minute_of(s: &str) -> Result<u16> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("{s:?} is not HH:MM"))?;
    let (h, m): (u16, u16) = (h.parse()?, m.parse()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        bail!("{s:?} is not a time of day");
    }
    Ok(h * 60 + m)
}

impl WeeklyWindow {
    pub fn parse(spec: &str) -> Result<WeeklyWindow> {
        let bad = |e: anyhow::Error| {
            anyhow!("weekly window {spec:?}: {e} (expected e.g. \"Mon-Fri 02:00-04:00\")")
        };
        let (days, times) = spec
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad(anyhow!("missing times")))?;
        let mut list = Vec::new();
        for part in days.split('+') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (mut d, end) = (weekday(a).map_err(bad)?, weekday(b).map_err(bad)?);
                    list.push(d);
                    while d != end {
                        d = d.next();
                        list.push(d);
                    }
                }
                None => list.push(weekday(part).map_err(bad)?),
            }
        }
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad(anyhow!("missing end time")))?;
        let (start_minute, end_minute) = (minute_of(a).map_err(bad)?, minute_of(b).map_err(bad)?);
        if start_minute == end_minute {
            return Err(bad(anyhow!("empty window")));
        }
        Ok(WeeklyWindow {
            days: list,
            start_minute,
            end_minute,
        })
    }

    fn contains(&self, day: Weekday, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            self.days.contains(&day) && (self.start_minute..self.end_minute).contains(&minute)
        } else {
            (self.days.contains(&day) && minute >= self.start_minute)
                || (self.days.contains(&day.previous()) && minute < self.end_minute)
        }
    }
}

/// Restrictions on when passes may run. Empty lists mean no restriction.
#[derive(Debug, Clone)]
pub struct Windows {
    pub dates: Vec<Date>,
    pub weekly: Vec<WeeklyWindow>,
    pub tz: TimeZone,
}

impl Windows {
    pub fn unrestricted(&self) -> bool {
        self.dates.is_empty() && self.weekly.is_empty()
    }

    fn allows(&self, date: Date, time: Time) -> bool {
        let minute = time.hour() as u16 * 60 + time.minute() as u16;
        (self.dates.is_empty() || self.dates.contains(&date))
            && (self.weekly.is_empty()
                || self
                    .weekly
                    .iter()
                    .any(|w| w.contains(date.weekday(), minute)))
    }

    pub fn allows_at(&self, now: Timestamp) -> bool {
        let z = now.to_zoned(self.tz.clone());
        self.allows(z.date(), z.time())
    }

    /// The first moment at or after `now` when a pass may run, within about 400 days.
    pub fn next_allowed(&self, now: Timestamp) -> Option<Zoned> {
        let z = now.to_zoned(self.tz.clone());
        if self.allows(z.date(), z.time()) {
            return Some(z);
        }
        let mut date = z.date();
        for day in 0..400 {
            if self.dates.is_empty() || self.dates.contains(&date) {
                let first_minute = if day == 0 {
                    z.hour() as i32 * 60 + z.minute() as i32 + 1
                } else {
                    0
                };
                for minute in first_minute..1440 {
                    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
                    if self.allows(date, time) {
                        return date.to_datetime(time).to_zoned(self.tz.clone()).ok();
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// `base` changed by up to ±5 % (at most ±60 s), so that many hubs do not hit Grouper at once.
pub fn jittered(base: Duration, seed: u64) -> Duration {
    let spread = (base.as_secs_f64() * 0.05).min(60.0);
    let unit = (seed % 10_001) as f64 / 10_000.0; // 0..=1
    Duration::from_secs_f64((base.as_secs_f64() + spread * (2.0 * unit - 1.0)).max(1.0))
}

/// Delay after `failures` consecutive failed passes: 30 s, 60 s, 120 s, … up to `sync_every`.
pub fn failure_delay(failures: u32, sync_every: Duration) -> Duration {
    let d = Duration::from_secs(30).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    d.min(sync_every)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, tz: &str) -> Timestamp {
        s.parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(TimeZone::get(tz).unwrap())
            .unwrap()
            .timestamp()
    }

    fn windows(dates: &[&str], weekly: &[&str], tz: &str) -> Windows {
        Windows {
            dates: dates.iter().map(|d| d.parse().unwrap()).collect(),
            weekly: weekly
                .iter()
                .map(|w| WeeklyWindow::parse(w).unwrap())
                .collect(),
            tz: TimeZone::get(tz).unwrap(),
        }
    }

    #[test]
    fn parses_windows() {
        let w = WeeklyWindow::parse("Mon-Wed 02:00-04:30").unwrap();
        assert_eq!(
            w.days,
            [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday]
        );
        assert_eq!((w.start_minute, w.end_minute), (120, 270));
        assert_eq!(
            WeeklyWindow::parse("Sat+Sun 00:00-24:00")
                .unwrap()
                .days
                .len(),
            2
        );
        assert_eq!(
            WeeklyWindow::parse("Fri-Mon 00:00-01:00")
                .unwrap()
                .days
                .len(),
            4
        );
        for bad in [
            "Mon",
            "Mon 2-4",
            "Funday 01:00-02:00",
            "Mon 01:00-01:00",
            "Mon 25:00-26:00",
        ] {
            assert!(WeeklyWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekly_window_in_a_time_zone() {
        let w = windows(&[], &["Mon-Fri 02:00-04:00"], "America/Los_Angeles");
        // 2026-11-23 is a Monday. 03:00 in Los Angeles is 11:00 UTC.
        assert!(w.allows_at(at("2026-11-23T03:00", "America/Los_Angeles")));
        assert!(!w.allows_at(at("2026-11-23T03:00", "UTC")));
        assert!(
            !w.allows_at(at("2026-11-28T03:00", "America/Los_Angeles")),
            "Saturday"
        );
        let next = w
            .next_allowed(at("2026-11-27T05:00", "America/Los_Angeles"))
            .unwrap();
        assert_eq!(
            next.datetime().to_string(),
            "2026-11-30T02:00:00",
            "Friday after the window -> Monday 02:00"
        );
    }

    #[test]
    fn window_over_midnight() {
        let w = windows(&[], &["Sun 22:00-02:00"], "UTC");
        assert!(w.allows_at(at("2026-11-29T23:30", "UTC")));
        assert!(
            w.allows_at(at("2026-11-30T01:59", "UTC")),
            "Monday morning belongs to Sunday's window"
        );
        assert!(!w.allows_at(at("2026-11-30T02:00", "UTC")));
    }

    #[test]
    fn allowed_dates_and_both_rules() {
        let w = windows(&["2026-12-01", "2026-12-15"], &[], "America/Los_Angeles");
        assert!(w.allows_at(at("2026-12-01T23:59", "America/Los_Angeles")));
        assert!(!w.allows_at(at("2026-12-02T00:00", "America/Los_Angeles")));
        assert_eq!(
            w.next_allowed(at("2026-12-02T10:00", "America/Los_Angeles"))
                .unwrap()
                .datetime()
                .to_string(),
            "2026-12-15T00:00:00"
        );
        assert!(
            w.next_allowed(at("2027-01-01T00:00", "UTC")).is_none(),
            "all dates passed"
        );
        let both = windows(&["2026-12-01"], &["Tue 02:00-03:00"], "UTC");
        assert!(both.allows_at(at("2026-12-01T02:30", "UTC")));
        assert!(!both.allows_at(at("2026-12-01T04:00", "UTC")));
        assert!(windows(&[], &[], "UTC").unrestricted());
    }

    #[test]
    fn jitter_and_backoff() {
        let hour = Duration::from_secs(3600);
        for seed in [0, 5000, 10_000, 123_456_789] {
            let j = jittered(hour, seed);
            assert!(
                j >= Duration::from_secs(3540) && j <= Duration::from_secs(3660),
                "{j:?}"
            );
        }
        assert_ne!(jittered(hour, 1), jittered(hour, 9000));
        assert_eq!(failure_delay(1, hour), Duration::from_secs(30));
        assert_eq!(failure_delay(3, hour), Duration::from_secs(120));
        assert_eq!(failure_delay(20, hour), hour);
    }
}
