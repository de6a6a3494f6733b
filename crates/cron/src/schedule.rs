//! When a job runs: `at` (one time, absolute or relative), `every` (fixed interval from an anchor),
//! `cron` (a 5- or 6-field expression in a time zone, with a deterministic per-job stagger).
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Default stagger of top-of-hour recurring expressions (`0 * * * *`, `0 */2 * * *`, …): up to 5 min,
/// so many such jobs do not all call the model in the same second.
pub const DEFAULT_TOP_OF_HOUR_STAGGER_MS: u64 = 5 * 60 * 1000;

/// A job's schedule (`schedule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Schedule {
    /// One time: an ISO 8601 timestamp (no zone = UTC), resolved from a relative `20m` at creation.
    At {
        /// The time.
        at: String,
    },
    /// Every `everyMs`, on slots `anchorMs + k·everyMs` (anchor default: the job's creation).
    #[serde(rename_all = "camelCase")]
    Every {
        /// Interval, ms (≥ 1).
        every_ms: u64,
        /// First slot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anchor_ms: Option<i64>,
    },
    /// A cron expression (`m h dom mon dow`, or with seconds first), in `tz` (default: the host's).
    #[serde(rename_all = "camelCase")]
    Cron {
        /// The expression.
        expr: String,
        /// IANA time zone, e.g. `Europe/Paris`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
        /// Spread runs over this window, by a per-job offset (default 5 min for top-of-hour expressions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stagger_ms: Option<u64>,
    },
}

/// A relative duration: `90s`, `20m`, `2h`, `1d`, `1w`, `+20m`, `in 20m`, or a bare number of minutes.
pub fn parse_relative_ms(s: &str) -> Option<i64> {
    let t = s.trim().trim_start_matches("in ").trim_start_matches('+').trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "" | "m" | "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600e3,
        "d" | "day" | "days" => 86_400e3,
        "w" | "week" | "weeks" => 604_800e3,
        _ => return None,
    };
    (n > 0.0).then_some((n * unit_ms) as i64)
}

/// An `at` value as epoch ms: ISO 8601 with a zone, ISO without a zone (UTC), or relative to `now_ms`.
pub fn parse_at(at: &str, now_ms: i64) -> Result<i64, String> {
    let t = at.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Utc.from_utc_datetime(&n).timestamp_millis());
        }
    }
    if let Some(ms) = parse_relative_ms(t) {
        return Ok(now_ms + ms);
    }
    Err(format!("{at:?} is neither an ISO 8601 time (2026-12-01T09:00:00Z) nor a relative time (20m, 2h, 1d)"))
}

/// Milliseconds as ISO 8601 UTC.
pub fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn cron_of(expr: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(expr.trim()).map_err(|e| format!("cron expression {expr:?}: {e}"))
}

fn tz_of(tz: Option<&str>) -> Result<Option<chrono_tz::Tz>, String> {
    match tz.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<chrono_tz::Tz>()
            .map(Some)
            .map_err(|_| format!("unknown time zone {t:?} (use an IANA name like Europe/Paris)")),
    }
}

/// A stable per-job offset in `[0, window)`.
fn stagger_offset(job_id: &str, window: u64) -> i64 {
    if window == 0 {
        return 0;
    }
    // FNV-1a: stable across runs and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job_id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % window) as i64
}

fn is_top_of_hour(expr: &str) -> bool {
    let f: Vec<&str> = expr.split_whitespace().collect();
    let (minute, hour) = match f.len() {
        5 => (f[0], f[1]),
        6 => (f[1], f[2]),
        _ => return false,
    };
    let seconds_zero = f.len() == 5 || f[0] == "0";
    seconds_zero && minute == "0" && (hour == "*" || hour.contains('/') || hour.contains(','))
}

impl Schedule {
    /// `at`, `every`, `cron`.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::At { .. } => "at",
            Schedule::Every { .. } => "every",
            Schedule::Cron { .. } => "cron",
        }
    }

    /// Check the schedule; the error names the field (`schedule.expr: …`).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Schedule::At { at } => parse_at(at, 0).map(|_| ()).map_err(|e| format!("schedule.at: {e}")),
            Schedule::Every { every_ms, .. } if *every_ms == 0 => Err("schedule.everyMs: must be at least 1".into()),
            Schedule::Every { .. } => Ok(()),
            Schedule::Cron { expr, tz, .. } => {
                cron_of(expr).map_err(|e| format!("schedule.expr: {e}"))?;
                tz_of(tz.as_deref()).map_err(|e| format!("schedule.tz: {e}"))?;
                Ok(())
            }
        }
    }

    /// The stagger window in force (explicit, or the default for top-of-hour expressions).
    pub fn stagger_ms(&self) -> u64 {
        match self {
            Schedule::Cron { stagger_ms: Some(s), .. } => *s,
            Schedule::Cron { expr, .. } if is_top_of_hour(expr) => DEFAULT_TOP_OF_HOUR_STAGGER_MS,
            _ => 0,
        }
    }

    /// The first run strictly after `after_ms` (`None`: never again). `at` jobs answer their time even
    /// when it has passed, as long as it is after `after_ms`; the scheduler runs a missed one at once.
    pub fn next_after(&self, after_ms: i64, job_id: &str, anchor_default_ms: i64) -> Option<i64> {
        match self {
            Schedule::At { at } => parse_at(at, anchor_default_ms).ok().filter(|t| *t > after_ms),
            Schedule::Every { every_ms, anchor_ms } => {
                let every = (*every_ms).max(1) as i64;
                let anchor = anchor_ms.unwrap_or(anchor_default_ms);
                if after_ms < anchor {
                    return Some(anchor);
                }
                let k = (after_ms - anchor) / every + 1;
                Some(anchor + k * every)
            }
            Schedule::Cron { expr, tz, .. } => {
                let cron = cron_of(expr).ok()?;
                let offset = stagger_offset(job_id, self.stagger_ms());
                let from = Utc.timestamp_millis_opt(after_ms - offset).single()?;
                let next = match tz_of(tz.as_deref()).ok()? {
                    Some(z) => cron.find_next_occurrence(&from.with_timezone(&z), false).ok()?.timestamp_millis(),
                    None => {
                        cron.find_next_occurrence(&from.with_timezone(&chrono::Local), false).ok()?.timestamp_millis()
                    }
                };
                Some(next + offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000; // 2026-09-21T...Z

    #[test]
    fn at_accepts_iso_and_relative() {
        assert_eq!(parse_at("2026-12-01T09:00:00Z", 0).unwrap(), 1_796_115_600_000);
        assert_eq!(parse_at("2026-12-01T09:00:00", 0).unwrap(), 1_796_115_600_000, "no zone = UTC");
        assert_eq!(parse_at("2026-12-01T10:00:00+01:00", 0).unwrap(), 1_796_115_600_000);
        assert_eq!(parse_at("20m", T0).unwrap(), T0 + 20 * 60_000);
        assert_eq!(parse_at("+2h", T0).unwrap(), T0 + 2 * 3_600_000);
        assert!(parse_at("next tuesday", T0).unwrap_err().contains("ISO 8601"));
        let s = Schedule::At { at: iso(T0 + 5000) };
        assert_eq!(s.next_after(T0, "j", T0), Some(T0 + 5000));
        assert_eq!(s.next_after(T0 + 5000, "j", T0), None);
    }

    #[test]
    fn every_uses_slots_from_the_anchor() {
        let s = Schedule::Every { every_ms: 1000, anchor_ms: Some(T0) };
        assert_eq!(s.next_after(T0 - 5, "j", 0), Some(T0));
        assert_eq!(s.next_after(T0, "j", 0), Some(T0 + 1000));
        assert_eq!(s.next_after(T0 + 2500, "j", 0), Some(T0 + 3000));
        assert!(Schedule::Every { every_ms: 0, anchor_ms: None }.validate().is_err());
    }

    #[test]
    fn cron_expressions_with_zones_and_stagger() {
        // 09:00 every day in Paris = 08:00 UTC in winter.
        let s = Schedule::Cron { expr: "0 9 * * *".into(), tz: Some("Europe/Paris".into()), stagger_ms: None };
        let after = parse_at("2026-12-01T07:00:00Z", 0).unwrap();
        assert_eq!(s.next_after(after, "j", 0), Some(parse_at("2026-12-01T08:00:00Z", 0).unwrap()));
        assert_eq!(s.stagger_ms(), 0, "a fixed hour is not top-of-hour recurring");
        // Top of every hour: staggered by a stable per-job offset under 5 min.
        let hourly = Schedule::Cron { expr: "0 * * * *".into(), tz: Some("UTC".into()), stagger_ms: None };
        let a = hourly.next_after(after, "job-a", 0).unwrap();
        let b = hourly.next_after(after, "job-b", 0).unwrap();
        assert_eq!(a, hourly.next_after(after, "job-a", 0).unwrap(), "stable");
        for t in [a, b] {
            let off = t - parse_at("2026-12-01T07:00:00Z", 0).unwrap();
            assert!((0..300_000).contains(&off), "{off}");
        }
        let no = Schedule::Cron { expr: "0 * * * *".into(), tz: None, stagger_ms: Some(0) };
        assert_eq!(no.stagger_ms(), 0);
        // Six fields: seconds.
        let secs = Schedule::Cron { expr: "*/10 * * * * *".into(), tz: Some("UTC".into()), stagger_ms: None };
        assert_eq!(secs.next_after(after, "j", 0), Some(after + 10_000));
        let bad = Schedule::Cron { expr: "61 * * * *".into(), tz: None, stagger_ms: None };
        assert!(bad.validate().unwrap_err().starts_with("schedule.expr:"));
        let bad_tz = Schedule::Cron { expr: "0 9 * * *".into(), tz: Some("Mars/Base".into()), stagger_ms: None };
        assert!(bad_tz.validate().unwrap_err().contains("unknown time zone"));
    }
}
