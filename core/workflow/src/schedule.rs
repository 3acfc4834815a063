//! `schedule:` — when `mediaflow serve` starts a workflow by itself.
//!
//! ```yaml
//! schedule: { cron: "0 6 * * 1-5", timezone: Europe/London, inputs: {...}, catch_up: latest, concurrency: skip }
//! ```
//!
//! A list of such entries is allowed. The cron expression is matched against the wall
//! clock of its time zone, so daylight saving changes neither skip nor double a run:
//! a wall-clock time that happens twice (the clocks go back) fires at its first instant
//! only, and one that does not happen (the clocks go forward) fires at the first instant
//! after the gap — the rule Vixie cron follows.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use marked_yaml::Node;
use serde::Serialize;
use serde_json::{Map, Value};

/// What happens to ticks missed while no service was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Run once for the latest missed tick.
    Latest,
    /// Run once for every missed tick (at most [`MAX_CATCH_UP`]).
    All,
    /// Run none of them.
    None,
}

/// What happens when a tick comes while this schedule's previous run is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Start another run.
    Allow,
    /// Skip this tick (recorded as skipped).
    Skip,
    /// Start it when the previous run has finished.
    Queue,
}

/// Most missed ticks `catch_up: all` runs after an outage.
pub const MAX_CATCH_UP: usize = 1000;

/// One entry of `schedule:`, compiled.
#[derive(Clone, Debug, Serialize)]
pub struct Schedule {
    /// Its position in the workflow's `schedule:` list (0 for a single mapping).
    pub index: usize,
    pub cron: String,
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    pub inputs: Map<String, Value>,
    pub catch_up: CatchUp,
    pub concurrency: Concurrency,
    /// Line of the entry in the workflow file.
    pub line: usize,
    #[serde(skip)]
    pattern: Cron,
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// The first instant after a wall-clock time that does not exist in `tz` (the clocks
/// went forward over it): the first whole minute after it that does exist, at most a day
/// ahead. That minute starts at the transition itself.
fn after_gap(tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = local.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..(24 * 60) {
        t += chrono::Duration::minutes(1);
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => {
                return Some(x.with_timezone(&Utc))
            }
            LocalResult::None => {}
        }
    }
    None
}

impl Schedule {
    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Walk the wall clock of the time zone, as if it had no daylight saving (UTC), and
        // map each matching wall-clock time to its instant.
        let mut local = t.with_timezone(&self.timezone).naive_local().and_utc();
        for _ in 0..10_000 {
            let next = self.pattern.find_next_occurrence(&local, false).ok()?;
            let wall = next.naive_utc();
            let instant = match self.timezone.from_local_datetime(&wall) {
                LocalResult::Single(x) => x.with_timezone(&Utc),
                // Twice on the wall clock: the first instant only.
                LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
                // Never on the wall clock: just after the gap.
                LocalResult::None => after_gap(&self.timezone, wall)?,
            };
            if instant > t {
                return Some(instant);
            }
            local = next;
        }
        None
    }

    /// The ticks in `(after, upto]`, oldest first, at most `limit`.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < limit {
            match self.next_after(t) {
                Some(n) if n <= upto => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }

    /// The next `n` ticks after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = t;
        while out.len() < n {
            match self.next_after(t) {
                Some(x) => {
                    out.push(x);
                    t = x;
                }
                None => break,
            }
        }
        out
    }
}

const SCHEDULE_KEYS: &[&str] = &["cron", "timezone", "inputs", "catch_up", "concurrency"];

impl crate::parse::P<'_> {
    /// `schedule:`: one mapping or a list of them.
    pub(crate) fn schedules(&mut self, n: &Node) -> Vec<(miette::SourceSpan, Schedule)> {
        match n {
            Node::Mapping(_) => self.schedule(n, 0).into_iter().collect(),
            Node::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.schedule(item, i))
                .collect(),
            other => {
                self.expect(
                    other,
                    None,
                    "schedule",
                    "a mapping (`cron:`, `timezone:`, ...) or a list of them",
                );
                Vec::new()
            }
        }
    }

    fn schedule(&mut self, n: &Node, index: usize) -> Option<(miette::SourceSpan, Schedule)> {
        let Some(map) = n.as_mapping() else {
            self.expect(n, None, "schedule", "a mapping with `cron:`");
            return None;
        };
        self.unknown_keys(map, SCHEDULE_KEYS, None, "a schedule");
        let span = self.c.source.node_span(n);
        let line = self.c.source.line_col(span.offset()).0;
        let Some(cron_node) = map.get_node("cron") else {
            self.c.push(
                "mediaflow::schedule_cron",
                None,
                Some(span),
                "a schedule needs `cron:`",
                "no `cron:` here",
                Some("e.g. `cron: \"0 6 * * 1-5\"` (06:00 on weekdays)".to_owned()),
            );
            return None;
        };
        let cron = self.string(cron_node, None, "cron")?;
        let pattern = match Cron::from_str(&cron.value) {
            Ok(p) => Some(p),
            Err(e) => {
                self.c.push(
                    "mediaflow::schedule_cron",
                    None,
                    Some(cron.span),
                    format!("`{}` is not a cron expression: {e}", cron.value),
                    "bad cron expression",
                    Some("five fields, minute hour day-of-month month day-of-week (e.g. `0 6 * * 1-5`), or six with seconds first; ranges, lists, steps, `@daily` and `@hourly` work".to_owned()),
                );
                None
            }
        };
        let timezone = match map.get_node("timezone") {
            None => Some(Tz::UTC),
            Some(t) => {
                let t = self.string(t, None, "timezone")?;
                match Tz::from_str(&t.value) {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
                        let help = match crate::diagnostic::suggest(&t.value, names) {
                            Some(s) => format!("did you mean `{s}`? Time zones are IANA names such as `Europe/London`"),
                            None => "time zones are IANA names such as `Europe/London`, `America/New_York` or `UTC`".to_owned(),
                        };
                        self.c.push(
                            "mediaflow::schedule_timezone",
                            None,
                            Some(t.span),
                            format!("unknown time zone `{}`", t.value),
                            "unknown time zone",
                            Some(help),
                        );
                        None
                    }
                }
            }
        };
        let catch_up = match map.get_node("catch_up") {
            None => Some(CatchUp::Latest),
            Some(v) => self.choice(
                v,
                "catch_up",
                &[
                    ("latest", CatchUp::Latest),
                    ("all", CatchUp::All),
                    ("none", CatchUp::None),
                ],
            ),
        };
        let concurrency = match map.get_node("concurrency") {
            None => Some(Concurrency::Skip),
            Some(v) => self.choice(
                v,
                "concurrency",
                &[
                    ("allow", Concurrency::Allow),
                    ("skip", Concurrency::Skip),
                    ("queue", Concurrency::Queue),
                ],
            ),
        };
        let inputs = match map.get_node("inputs") {
            None => Some(Map::new()),
            Some(v) => match self.located(v).value {
                Value::Object(m) => Some(m),
                _ => {
                    self.expect(v, None, "inputs", "a mapping of input name to value");
                    None
                }
            },
        };
        Some((
            span,
            Schedule {
                index,
                cron: cron.value,
                timezone: timezone?,
                inputs: inputs?,
                catch_up: catch_up?,
                concurrency: concurrency?,
                line,
                pattern: pattern?,
            },
        ))
    }

    fn choice<T: Copy>(&mut self, n: &Node, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(n, None, key)?;
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == s.value) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.c.push(
            "mediaflow::schedule_option",
            None,
            Some(s.span),
            format!("`{key}: {}` is not one of {}", s.value, names.join(", ")),
            "unknown value",
            crate::diagnostic::suggest(&s.value, names.iter().copied())
                .map(|x| format!("did you mean `{x}`?")),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, tz: Tz) -> Schedule {
        Schedule {
            index: 0,
            cron: cron.to_owned(),
            timezone: tz,
            inputs: Map::new(),
            catch_up: CatchUp::Latest,
            concurrency: Concurrency::Skip,
            line: 1,
            pattern: Cron::from_str(cron).expect("cron"),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn ticks(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        s.upcoming(at(from), n)
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
            .collect()
    }

    #[test]
    fn a_daily_time_skipped_by_the_clocks_fires_after_the_gap_and_a_doubled_one_fires_once() {
        let s = schedule("30 1 * * *", chrono_tz::Europe::London);
        assert_eq!(
            ticks(&s, "2027-03-26T12:00:00Z", 4),
            [
                "2027-03-27T01:30Z",
                "2027-03-28T01:00Z",
                "2027-03-29T00:30Z",
                "2027-03-30T00:30Z"
            ]
        );
        assert_eq!(
            ticks(&s, "2027-10-29T12:00:00Z", 3),
            [
                "2027-10-30T00:30Z",
                "2027-10-31T00:30Z",
                "2027-11-01T01:30Z"
            ]
        );
    }

    #[test]
    fn sub_hourly_ticks_in_a_gap_become_one_run_at_its_end() {
        let s = schedule("*/20 * * * *", chrono_tz::Europe::London);
        assert_eq!(
            ticks(&s, "2027-03-28T00:30:00Z", 4),
            [
                "2027-03-28T00:40Z",
                "2027-03-28T01:00Z",
                "2027-03-28T01:20Z",
                "2027-03-28T01:40Z"
            ]
        );
    }

    #[test]
    fn weekdays_in_new_york_and_seconds() {
        let s = schedule("0 6 * * 1-5", chrono_tz::America::New_York);
        assert_eq!(
            ticks(&s, "2027-01-01T12:00:00Z", 3),
            [
                "2027-01-04T11:00Z",
                "2027-01-05T11:00Z",
                "2027-01-06T11:00Z"
            ]
        );
        let every_second = schedule("* * * * * *", Tz::UTC);
        let t = every_second.upcoming(at("2027-01-01T00:00:00Z"), 2);
        assert_eq!(t[1] - t[0], chrono::Duration::seconds(1));
    }
}
