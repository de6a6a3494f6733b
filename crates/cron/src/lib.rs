//! Homarus cron: the pure part of scheduling. Job definitions in OpenClaw's `CronJob` shape with
//! validation that names the offending param, schedule arithmetic (`at`, `every`, cron expressions
//! with a time zone and a per-job stagger), what a finished run does to a job (error backoff 30 s →
//! 60 min, auto-disable after 10 failures in a row, one-shots), and [`DueIndex`], the ordered set the
//! scheduler pops due jobs from in O(log n). The gateway owns the timer, the store and the runs.
mod index;
mod job;
mod schedule;

pub use index::DueIndex;
pub use job::{CronJob, Delivery, JobState, Payload, BACKOFF_MS, MAX_CONSECUTIVE_ERRORS};
pub use schedule::{iso, parse_at, parse_relative_ms, Schedule, DEFAULT_TOP_OF_HOUR_STAGGER_MS};
