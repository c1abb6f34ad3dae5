//! The only place that reads the clock (ARCHITECTURE rule 7).
//!
//! Wall time = the system time at start-up plus the elapsed `tokio::time::Instant`, so a paused
//! tokio clock in tests drives every timestamp and deadline deterministically.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Clock {
    origin_ms: u64,
    origin: Instant,
}

impl Clock {
    /// A clock starting at the current system time.
    pub fn system() -> Clock {
        let origin_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Clock { origin_ms, origin: Instant::now() }
    }

    /// A clock starting at a fixed time (tests).
    pub fn starting_at(origin_ms: u64) -> Clock {
        Clock { origin_ms, origin: Instant::now() }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.origin_ms + self.origin.elapsed().as_millis() as u64
    }
}

/// RFC 3339 UTC rendering of epoch milliseconds (for people and the v1 API).
pub fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // civil-from-days (Howard Hinnant)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_millis() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }
}
