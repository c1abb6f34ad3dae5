//! Freezes (issue 26, `[[freezes]]` in the configuration file): times when a change of the
//! matching apps waits (`Frozen`, with the end and the reason). A freeze is an absolute range
//! (`from` / `until`, RFC 3339 in UTC) or a weekly one (`weekly = "Fri 16:00 - Mon 09:00"`, UTC),
//! for the apps whose repository, branch and prefix match its globs (`*` matches anything).
//!
//! Invariants: a freeze never stops what is in flight or an operator's rollback, and leaves a
//! delete held by prune protection as it is (DeleteHeld); `gitmoxi sync --override-freeze APP`
//! lets one change through, recorded with who asked.

use crate::record::AppKey;
use serde::{Deserialize, Serialize};

/// Minutes in a week.
pub const MINUTES_PER_WEEK: u64 = 7 * 24 * 60;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A `[[freezes]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// Its name (shown with the hold); defaults to `freeze N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Why (shown with the hold).
    pub reason: String,
    /// Repository names it covers (glob; all when absent).
    #[serde(default)]
    pub repo: Option<String>,
    /// Branches (glob).
    #[serde(default)]
    pub branch: Option<String>,
    /// App prefixes (glob).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Start of an absolute range (RFC 3339, e.g. `2026-12-20T00:00:00Z`).
    #[serde(default)]
    pub from: Option<String>,
    /// End of an absolute range.
    #[serde(default)]
    pub until: Option<String>,
    /// A weekly range, `Day HH:MM - Day HH:MM` in UTC.
    #[serde(default)]
    pub weekly: Option<String>,
}

/// When a freeze holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeWindow {
    /// From one instant until another (ms since the epoch).
    Range {
        /// Start (inclusive).
        from_ms: u64,
        /// End (exclusive).
        until_ms: u64,
    },
    /// Every week from one minute of the week to another (minutes since Monday 00:00 UTC; may
    /// wrap past Sunday).
    Weekly {
        /// Start (inclusive).
        start: u64,
        /// End (exclusive).
        end: u64,
    },
}

/// A checked freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Repository names (glob).
    pub repo: String,
    /// Branches (glob).
    pub branch: String,
    /// App prefixes (glob).
    pub prefix: String,
    /// When.
    pub window: FreezeWindow,
}

/// A freeze in force for an app now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFreeze {
    /// The freeze's name.
    pub name: String,
    /// Its reason.
    pub reason: String,
    /// When it ends (ms since the epoch).
    pub until_ms: u64,
}

impl FreezeConfig {
    /// Checks the entry (`index`: its place among the `[[freezes]]`, from 1).
    pub fn check(&self, index: usize) -> Result<Freeze, String> {
        let name = self.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("freeze {index}"));
        let at = |what: &str| format!("[[freezes]] #{index} ('{name}'): {what}");
        if self.reason.trim().is_empty() {
            return Err(at("`reason` is empty; say why changes wait (it is shown with every held app)"));
        }
        let window = match (&self.from, &self.until, &self.weekly) {
            (Some(from), Some(until), None) => {
                let from_ms = parse_rfc3339(from).map_err(|e| at(&format!("`from` {e}")))?;
                let until_ms = parse_rfc3339(until).map_err(|e| at(&format!("`until` {e}")))?;
                if until_ms <= from_ms {
                    return Err(at(&format!("`until` ({until}) is not after `from` ({from})")));
                }
                FreezeWindow::Range { from_ms, until_ms }
            }
            (None, None, Some(weekly)) => {
                let (start, end) = parse_weekly(weekly).map_err(|e| at(&format!("`weekly` {e}")))?;
                FreezeWindow::Weekly { start, end }
            }
            _ => return Err(at("set either `from` and `until` (RFC 3339, UTC) or `weekly` (e.g. \"Fri 16:00 - Mon 09:00\")")),
        };
        let glob = |g: &Option<String>| g.clone().filter(|g| !g.is_empty()).unwrap_or_else(|| "*".into());
        Ok(Freeze {
            name,
            reason: self.reason.clone(),
            repo: glob(&self.repo),
            branch: glob(&self.branch),
            prefix: glob(&self.prefix),
            window,
        })
    }
}

impl Freeze {
    /// Whether the freeze covers the app.
    pub fn covers(&self, key: &AppKey) -> bool {
        glob_match(&self.repo, &key.repo) && glob_match(&self.branch, &key.branch) && glob_match(&self.prefix, &key.prefix)
    }

    /// When the freeze ends, if it holds at `now_ms`.
    pub fn ends_at(&self, now_ms: u64) -> Option<u64> {
        self.window.ends_at(now_ms)
    }
}

impl FreezeWindow {
    /// When the window ends, if `now_ms` is inside it.
    pub fn ends_at(&self, now_ms: u64) -> Option<u64> {
        match *self {
            FreezeWindow::Range { from_ms, until_ms } => (from_ms <= now_ms && now_ms < until_ms).then_some(until_ms),
            FreezeWindow::Weekly { start, end } => {
                let minute = now_ms / 60_000;
                // 1970-01-01 was a Thursday: minute 0 of the epoch is minute 3 days into the week
                let of_week = (minute + 3 * 24 * 60) % MINUTES_PER_WEEK;
                let inside = if start < end { start <= of_week && of_week < end } else { of_week >= start || of_week < end };
                inside.then(|| (minute + (end + MINUTES_PER_WEEK - of_week) % MINUTES_PER_WEEK) * 60_000)
            }
        }
    }
}

/// The freeze holding `key` at `now_ms` (the one that ends last, when several do).
pub fn active(freezes: &[Freeze], key: &AppKey, now_ms: u64) -> Option<ActiveFreeze> {
    freezes
        .iter()
        .filter(|f| f.covers(key))
        .filter_map(|f| f.ends_at(now_ms).map(|until_ms| ActiveFreeze { name: f.name.clone(), reason: f.reason.clone(), until_ms }))
        .max_by_key(|a| a.until_ms)
}

/// `*` matches any run of characters (also `/`); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `Day HH:MM - Day HH:MM` → (start, end) minutes of the week (UTC, from Monday 00:00).
pub fn parse_weekly(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once('-').ok_or_else(|| format!("is \"{text}\"; write \"Fri 16:00 - Mon 09:00\" (UTC)"))?;
    let point = |s: &str| -> Result<u64, String> {
        let mut parts = s.split_whitespace();
        let (Some(day), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("has \"{}\"; write a day and a time, e.g. \"Fri 16:00\"", s.trim()));
        };
        let day = day.to_ascii_lowercase();
        let d = DAYS.iter().position(|x| day.starts_with(x)).ok_or_else(|| format!("has the day \"{day}\"; use Mon … Sun"))?;
        let minutes = parse_hh_mm(time)?;
        Ok(d as u64 * 24 * 60 + minutes)
    };
    let (start, end) = (point(a)?, point(b)?);
    if start == end {
        return Err(format!("is \"{text}\": it starts where it ends"));
    }
    Ok((start, end))
}

fn parse_hh_mm(time: &str) -> Result<u64, String> {
    let bad = || format!("has the time \"{time}\"; use HH:MM (24 h, UTC)");
    let (h, m) = time.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `YYYY-MM-DDTHH:MM[:SS]Z` (UTC; an offset `+HH:MM` is applied) → ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let bad = || format!("is \"{text}\"; write an RFC 3339 time such as 2026-12-20T00:00:00Z");
    let t = text.trim();
    if t.len() < 16 || !t.is_char_boundary(10) || !t.is_char_boundary(11) {
        return Err(bad());
    }
    let (date, rest) = (&t[..10], &t[11..]);
    if !matches!(t.as_bytes()[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let mut ymd = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next()) else { return Err(bad()) };
    let (y, mo, d): (i64, u64, u64) = (y.parse().map_err(|_| bad())?, mo.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let (clock, offset_minutes): (&str, i64) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&rest[..i], sign * parse_hh_mm(&rest[i + 1..]).map_err(|_| bad())? as i64)
    } else {
        return Err(bad());
    };
    let clock = clock.split('.').next().unwrap_or(clock);
    let mut hms = clock.split(':');
    let (Some(h), Some(mi)) = (hms.next(), hms.next()) else { return Err(bad()) };
    let s = hms.next().unwrap_or("0");
    let (h, mi, s): (u64, u64, u64) = (h.parse().map_err(|_| bad())?, mi.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?);
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset_minutes * 60;
    u64::try_from(secs).map(|s| s * 1000).map_err(|_| bad())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-20 09:00 UTC` for ms since the epoch.
pub fn format_utc(ms: u64) -> String {
    let (date, hh, mm, _) = civil(ms);
    format!("{date} {hh:02}:{mm:02} UTC")
}

/// `2026-12-20T09:00:00Z` for ms since the epoch (what [`parse_rfc3339`] reads).
pub fn format_rfc3339(ms: u64) -> String {
    let (date, hh, mm, ss) = civil(ms);
    format!("{date}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// The date (`YYYY-MM-DD`), hour, minute and second of ms since the epoch.
fn civil(ms: u64) -> (String, u64, u64, u64) {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil from days (the inverse of `days_from_civil`)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), rem / 3600, (rem % 3600) / 60, rem % 60)
}
