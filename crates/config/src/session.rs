//! `session`: automatic reset policies and store maintenance, with the pure functions that apply
//! them (which policy governs a session, and whether a session is still fresh at a given time).
//!
//! Semantics follow OpenClaw's `session.reset` docs: no automatic reset by default; `daily` resets at
//! `atHour` local time on the gateway host, measured from when the current session id started;
//! `idle` resets after `idleMinutes` without a user interaction; when both apply, whichever expires
//! first wins. `resetByChannel.<channel>` replaces the type and base policy outright;
//! `resetByType.<direct|group|thread>` overrides fields of the base policy.
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Local, LocalResult, NaiveTime, TimeZone};
use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Default hour of the daily reset.
pub const DEFAULT_RESET_AT_HOUR: u8 = 4;
/// Idle minutes when `mode` is `idle` and `idleMinutes` is unset.
pub const DEFAULT_IDLE_MINUTES: u64 = 60;
/// Default age after which untouched sessions are pruned.
pub const DEFAULT_PRUNE_AFTER_MS: u64 = 30 * 86_400_000;
/// Default cap on stored sessions.
pub const DEFAULT_MAX_ENTRIES: u64 = 5000;

/// Whether `v` is its type's default (to leave untouched sections out of serialized config).
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `session`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionConfig {
    /// Base automatic reset policy. Default: no automatic reset (`/new` and `sessions.reset` always work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetPolicyConfig>,
    /// Per chat type overrides of `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_by_type: Option<ResetByTypeConfig>,
    /// Per channel policies (keyed by channel id, lower case); a match replaces `reset` and `resetByType`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reset_by_channel: BTreeMap<String, ResetPolicyConfig>,
    /// Store maintenance: pruning of old sessions and a cap on their number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceConfig>,
    /// `per-sender` (default) or `global` (one session for everything). Accepted; only `per-sender` is
    /// implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// Direct-message session scope: `main` (default: every DM shares the agent's main session),
    /// `per-peer`, `per-channel-peer`, `per-account-channel-peer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_scope: Option<DmScope>,
    /// Group session scope: `per-group` (default: one session per group/room) or `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_scope: Option<GroupScope>,
    /// Notify the main session about new sessions. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_on_create: Option<Value>,
    /// Cross-channel identity links: canonical id → `["<channel>:<peerId>", …]`; a linked peer's DM
    /// session uses the canonical id (not with `dmScope: main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_links: Option<BTreeMap<String, Vec<String>>>,
    /// Extra reset trigger phrases. Accepted; used once chat commands land.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_triggers: Option<Value>,
    /// OpenClaw store path template. Accepted and ignored: Homarus keeps sessions in its SQLite store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Value>,
    /// Thread bindings. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_bindings: Option<Value>,
    /// Session sharing modes. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Value>,
    /// Send policy rules. Accepted; used once channels land.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_policy: Option<Value>,
    /// Accepted and ignored, as in OpenClaw (the main session suffix is always `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_key: Option<Value>,
}

/// `session.dmScope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// Every DM goes to `agent:<id>:main`.
    #[default]
    Main,
    /// `agent:<id>:direct:<peer>`.
    PerPeer,
    /// `agent:<id>:<channel>:direct:<peer>`.
    PerChannelPeer,
    /// `agent:<id>:<channel>:<account>:direct:<peer>`.
    PerAccountChannelPeer,
}

/// `session.groupScope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GroupScope {
    /// One session per group/room (`agent:<id>:<channel>:group:<id>`).
    #[default]
    PerGroup,
    /// Groups share the agent's main session (replies still go to the group).
    Main,
}

/// One reset policy (`session.reset`, `session.resetByType.*`, `session.resetByChannel.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPolicyConfig {
    /// `none` (default; `manual` is a synonym), `daily` or `idle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ResetMode>,
    /// Local hour (0-23) of the daily reset; default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hour: Option<AtHour>,
    /// Minutes without a user interaction before the session resets. Applies in `daily` mode too when
    /// set; default 60 in `idle` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_minutes: Option<PositiveInt>,
}

/// `session.resetByType`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetByTypeConfig {
    /// Direct chats (including the main session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<ResetPolicyConfig>,
    /// Groups, rooms and channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<ResetPolicyConfig>,
    /// Threads and topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ResetPolicyConfig>,
}

/// `session.reset.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResetMode {
    /// No automatic reset.
    #[default]
    #[serde(alias = "manual")]
    None,
    /// Reset at `atHour` local time.
    Daily,
    /// Reset after `idleMinutes` without interaction.
    Idle,
}

/// `session.maintenance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// `enforce` (default) removes what the limits select; `warn` only logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MaintenanceMode>,
    /// Sessions not updated for this long are removed (transcript archived as `.deleted.`). A duration
    /// such as `"30d"`, `"12h"`, `"90m"` (a bare number means days); default `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_after: Option<DurationSpec>,
    /// At most this many sessions are kept; the least recently updated go first. Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<PositiveInt>,
    /// Dashboard archiving. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_dashboard_after: Option<Value>,
    /// Recent-activity protection window. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_recent: Option<Value>,
    /// Age limit of reset/deleted transcript archives. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_archive_retention: Option<Value>,
    /// Disk budget. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_bytes: Option<Value>,
    /// Disk budget cleanup target. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_water_bytes: Option<Value>,
    /// Compressed cold transcript storage. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_storage: Option<Value>,
}

/// `session.maintenance.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MaintenanceMode {
    /// Apply the limits.
    #[default]
    Enforce,
    /// Only report what the limits would remove.
    Warn,
}

/// The kind of chat a session belongs to, for `resetByType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    /// Direct messages and the main session.
    Direct,
    /// Groups, rooms, channels.
    Group,
    /// Threads and topics.
    Thread,
}

impl ResetType {
    /// The type of the session with `key` (`:thread:`/`:topic:` → thread; `chat_type` group/channel/room
    /// or a `:group:`/`:channel:` key → group; else direct).
    pub fn of(key: &str, chat_type: &str) -> Self {
        let key = key.to_ascii_lowercase();
        if key.contains(":thread:") || key.contains(":topic:") {
            ResetType::Thread
        } else if matches!(chat_type, "group" | "channel" | "room")
            || key.contains(":group:")
            || key.contains(":channel:")
        {
            ResetType::Group
        } else {
            ResetType::Direct
        }
    }
}

/// The effective policy for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetPolicy {
    /// Mode after overrides.
    pub mode: ResetMode,
    /// Hour of the daily reset.
    pub at_hour: u8,
    /// Idle limit, when one applies.
    pub idle_minutes: Option<u64>,
}

/// Why a session is no longer fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// The daily boundary passed since the session started.
    Daily,
    /// No interaction for longer than the idle limit.
    Idle,
}

impl SessionConfig {
    /// The policy for a session of type `ty` on `channel` (when known).
    pub fn reset_policy(&self, ty: ResetType, channel: Option<&str>) -> ResetPolicy {
        let by_channel = channel.and_then(|c| self.reset_by_channel.get(&c.trim().to_ascii_lowercase()));
        let (base, typed) = match by_channel {
            Some(p) => (Some(p), None),
            None => {
                let t = self.reset_by_type.as_ref().and_then(|t| match ty {
                    ResetType::Direct => t.direct.as_ref(),
                    ResetType::Group => t.group.as_ref(),
                    ResetType::Thread => t.thread.as_ref(),
                });
                (self.reset.as_ref(), t)
            }
        };
        let pick = |f: &dyn Fn(&ResetPolicyConfig) -> Option<u64>| typed.and_then(f).or_else(|| base.and_then(f));
        let mode = typed.and_then(|p| p.mode).or_else(|| base.and_then(|p| p.mode)).unwrap_or_default();
        let at_hour = pick(&|p| p.at_hour.map(|h| h.0 as u64)).unwrap_or(DEFAULT_RESET_AT_HOUR as u64) as u8;
        let idle_minutes =
            pick(&|p| p.idle_minutes.map(|m| m.0)).or((mode == ResetMode::Idle).then_some(DEFAULT_IDLE_MINUTES));
        ResetPolicy { mode, at_hour, idle_minutes }
    }

    /// Effective maintenance settings.
    pub fn maintenance(&self) -> (MaintenanceMode, u64, u64) {
        let m = self.maintenance.clone().unwrap_or_default();
        (
            m.mode.unwrap_or_default(),
            m.prune_after.map(|d| d.0).unwrap_or(DEFAULT_PRUNE_AFTER_MS),
            m.max_entries.map(|n| n.0).unwrap_or(DEFAULT_MAX_ENTRIES),
        )
    }
}

impl ResetPolicy {
    /// Whether a session that started at `started_at_ms` and last saw a user at
    /// `last_interaction_ms` (falling back to its start) is stale at `now_ms`, and why. Daily wins
    /// when both apply.
    pub fn staleness(&self, started_at_ms: i64, last_interaction_ms: Option<i64>, now_ms: i64) -> Option<Staleness> {
        if self.mode == ResetMode::None {
            return None;
        }
        if self.mode == ResetMode::Daily && started_at_ms < daily_boundary_ms(now_ms, self.at_hour) {
            return Some(Staleness::Daily);
        }
        let last = last_interaction_ms.unwrap_or(started_at_ms);
        match self.idle_minutes {
            Some(m) if now_ms > last.saturating_add((m as i64).saturating_mul(60_000)) => Some(Staleness::Idle),
            _ => None,
        }
    }
}

/// The most recent `at_hour:00` local time at or before `now_ms`, in ms since the epoch.
pub fn daily_boundary_ms(now_ms: i64, at_hour: u8) -> i64 {
    let Some(now) = DateTime::from_timestamp_millis(now_ms) else { return i64::MIN };
    let now = now.with_timezone(&Local);
    let at = NaiveTime::from_hms_opt(at_hour.min(23) as u32, 0, 0).unwrap_or_default();
    let boundary_on = |date: chrono::NaiveDate| match Local.from_local_datetime(&date.and_time(at)) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
        // The hour does not exist that day (DST gap): the boundary is the first instant after it.
        LocalResult::None => Local
            .from_local_datetime(&date.and_time(at + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp_millis()),
    };
    let today = boundary_on(now.date_naive()).unwrap_or(i64::MIN);
    if now_ms >= today {
        return today;
    }
    now.date_naive().pred_opt().and_then(boundary_on).unwrap_or(i64::MIN)
}

/// Shared visitor for small bounded integers written as JSON numbers (JSON5 may hand them over as floats).
fn visit_bounded<E: de::Error>(v: f64, min: u64, max: u64, exp: &dyn de::Expected) -> Result<u64, E> {
    if v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
        Ok(v as u64)
    } else {
        Err(E::invalid_value(de::Unexpected::Float(v), exp))
    }
}

macro_rules! bounded_int {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $min:expr, $max:expr, $expecting:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
        pub struct $name(#[schemars(range(min = $min, max = $max))] pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        if (($min as u64)..=($max as u64)).contains(&v) {
                            Ok($name(v as $inner))
                        } else {
                            Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        Err(E::invalid_value(de::Unexpected::Signed(v), &self))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        visit_bounded(v, $min as u64, $max as u64, &self).map(|n| $name(n as $inner))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

bounded_int!(
    /// An hour of the day, 0-23.
    AtHour, u8, 0, 23, "an integer 0-23"
);
bounded_int!(
    /// A positive integer.
    PositiveInt, u64, 1, 1_000_000_000, "a positive integer"
);

/// A duration written as `"30d"`, `"12h"`, `"90m"`, `"45s"`, `"500ms"`, `"2w"` or a bare number of days;
/// held in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct DurationSpec(#[schemars(with = "String")] pub u64);

/// Parse a duration such as `30d` into milliseconds; a bare number is `default_unit_ms` units.
pub fn parse_duration_ms(s: &str, default_unit_ms: u64) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" => default_unit_ms,
        "ms" => 1,
        "s" | "sec" | "secs" => 1000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hrs" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "wk" | "wks" => 7 * 86_400_000,
        _ => return None,
    };
    let ms = n * unit_ms as f64;
    (ms.is_finite() && ms > 0.0 && ms < u64::MAX as f64).then_some(ms as u64)
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30d\", \"12h\" or \"90m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationSpec, E> {
                parse_duration_ms(v, 86_400_000)
                    .map(DurationSpec)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationSpec, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0;
        let text = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")]
            .iter()
            .find(|(unit, _)| ms.is_multiple_of(*unit))
            .map(|(unit, suffix)| format!("{}{suffix}", ms / unit))
            .unwrap_or_else(|| format!("{ms}ms"));
        s.serialize_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> SessionConfig {
        serde_json::from_value(v).unwrap()
    }

    fn local_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Local.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap().timestamp_millis()
    }

    #[test]
    fn no_policy_never_resets() {
        let p = SessionConfig::default().reset_policy(ResetType::Direct, None);
        assert_eq!(p.mode, ResetMode::None);
        assert_eq!(p.staleness(0, None, local_ms(2026, 11, 26, 12, 0)), None);
    }

    #[test]
    fn daily_resets_after_the_boundary_measured_from_session_start() {
        let p = cfg(serde_json::json!({"reset": {"mode": "daily", "atHour": 4}})).reset_policy(ResetType::Direct, None);
        let started = local_ms(2026, 2, 5, 23, 0);
        assert_eq!(p.staleness(started, None, local_ms(2026, 2, 6, 3, 59)), None);
        assert_eq!(p.staleness(started, None, local_ms(2026, 2, 6, 9, 0)), Some(Staleness::Daily));
        // Started after today's boundary: fresh until tomorrow's.
        assert_eq!(p.staleness(local_ms(2026, 2, 6, 5, 0), None, local_ms(2026, 2, 6, 23, 0)), None);
    }

    #[test]
    fn idle_uses_last_interaction_and_whichever_expires_first_wins() {
        let c = cfg(serde_json::json!({"reset": {"mode": "idle", "idleMinutes": 30}}));
        let p = c.reset_policy(ResetType::Direct, None);
        let t0 = local_ms(2026, 2, 6, 10, 0);
        assert_eq!(p.staleness(t0, Some(t0 + 20 * 60_000), t0 + 45 * 60_000), None);
        assert_eq!(p.staleness(t0, Some(t0 + 20 * 60_000), t0 + 51 * 60_000), Some(Staleness::Idle));
        // No interaction yet: measured from the start.
        assert_eq!(p.staleness(t0, None, t0 + 31 * 60_000), Some(Staleness::Idle));
        // Default idle limit in idle mode.
        let d = cfg(serde_json::json!({"reset": {"mode": "idle"}})).reset_policy(ResetType::Direct, None);
        assert_eq!(d.idle_minutes, Some(DEFAULT_IDLE_MINUTES));
        // Daily with an idle limit: idle can expire first.
        let both = cfg(serde_json::json!({"reset": {"mode": "daily", "atHour": 4, "idleMinutes": 10}}))
            .reset_policy(ResetType::Direct, None);
        assert_eq!(both.staleness(t0, None, t0 + 11 * 60_000), Some(Staleness::Idle));
    }

    #[test]
    fn channel_beats_type_beats_base() {
        let c = cfg(serde_json::json!({
            "reset": {"mode": "daily", "atHour": 4},
            "resetByType": {"group": {"mode": "idle", "idleMinutes": 120}, "thread": {"atHour": 6}},
            "resetByChannel": {"discord": {"mode": "idle", "idleMinutes": 10}}
        }));
        assert_eq!(c.reset_policy(ResetType::Direct, None).mode, ResetMode::Daily);
        let g = c.reset_policy(ResetType::Group, Some("telegram"));
        assert_eq!((g.mode, g.idle_minutes), (ResetMode::Idle, Some(120)));
        let t = c.reset_policy(ResetType::Thread, None);
        assert_eq!((t.mode, t.at_hour), (ResetMode::Daily, 6));
        let d = c.reset_policy(ResetType::Group, Some("Discord"));
        assert_eq!((d.mode, d.idle_minutes), (ResetMode::Idle, Some(10)));
    }

    #[test]
    fn reset_type_from_key_and_chat_type() {
        assert_eq!(ResetType::of("agent:main:main", "direct"), ResetType::Direct);
        assert_eq!(ResetType::of("agent:main:telegram:group:42", "group"), ResetType::Group);
        assert_eq!(ResetType::of("agent:main:discord:channel:1:thread:9", "channel"), ResetType::Thread);
        assert_eq!(ResetType::of("agent:main:x", "room"), ResetType::Group);
    }

    #[test]
    fn values_are_bounded_and_durations_parse() {
        assert!(serde_json::from_value::<ResetPolicyConfig>(serde_json::json!({"atHour": 24})).is_err());
        assert!(serde_json::from_value::<ResetPolicyConfig>(serde_json::json!({"idleMinutes": 0})).is_err());
        assert!(serde_json::from_value::<ResetByTypeConfig>(serde_json::json!({"dm": {}})).is_err());
        assert_eq!(parse_duration_ms("30d", 1), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("90m", 1), Some(90 * 60_000));
        assert_eq!(parse_duration_ms("7", 86_400_000), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms("7 parsecs", 1), None);
        let m: MaintenanceConfig =
            serde_json::from_value(serde_json::json!({"pruneAfter": "12h", "maxEntries": 3})).unwrap();
        assert_eq!(m.prune_after, Some(DurationSpec(12 * 3_600_000)));
        assert_eq!(serde_json::to_value(m.prune_after).unwrap(), "12h");
    }
}
