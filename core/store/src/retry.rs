//! Transient database errors are retried with backoff, so a restarting PostgreSQL or a
//! SQLite file another process holds locked for a moment costs a run a pause, not its steps.
//!
//! Every statement the store runs is safe to repeat: writes are upserts, conditional
//! updates whose repeat changes nothing, or inserts that ignore a conflict on their key
//! (`create_run`). `claim_run` checks, when its update seems to have missed, whether the
//! missed update was its own earlier attempt.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a statement is retried by default (`MEDIAFLOW_DB_RETRY_SECS`). Shorter than
/// the 30 s after which another process may take a silent run over.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(15);

const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// The retry window from `MEDIAFLOW_DB_RETRY_SECS`, or the default.
pub(crate) fn window_from_env() -> Duration {
    std::env::var("MEDIAFLOW_DB_RETRY_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_RETRY_WINDOW)
}

/// Whether `e` may go away by itself: the connection broke or could not be made, the
/// server is shutting down or starting up, a serialization failure or deadlock, or SQLite
/// stayed busy or locked past its busy timeout.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

fn transient_code(code: &str) -> bool {
    // SQLite's codes are numbers below 10,000 (the primary code is the low byte of the
    // extended one); PostgreSQL's SQLSTATEs are five characters.
    if code.len() < 5 {
        return code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)); // SQLITE_BUSY, SQLITE_LOCKED
    }
    // PostgreSQL SQLSTATEs: class 08 (connection exception), admin/crash shutdown,
    // cannot connect now (starting up), serialization failure, deadlock.
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

/// Runs `op` until it succeeds, fails for good, or `window` has passed, waiting 50 ms,
/// 100 ms, … up to 2 s between attempts.
pub(crate) async fn retry<T, F, Fut>(window: Duration, mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        match op().await {
            Err(e) if is_transient(&e) && started.elapsed() + delay < window => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for code in [
            "5", "517", "261", "6", "08006", "08001", "57P01", "57P03", "40001",
        ] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["1", "19", "2067", "23505", "42P01", "22P02"] {
            assert!(!transient_code(code), "{code}");
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_within_the_window() {
        let mut calls = 0;
        let r: Result<u32, _> = retry(Duration::from_secs(2), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 4 {
                    Err(sqlx::Error::PoolTimedOut)
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 4);

        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let r: Result<(), _> = retry(Duration::from_millis(500), || {
            calls += 1;
            async { Err(sqlx::Error::PoolTimedOut) }
        })
        .await;
        assert!(matches!(r, Err(sqlx::Error::PoolTimedOut)));
        // Waits of 50, 100 and 200 ms; the next (400 ms) would end past the window.
        assert_eq!(calls, 4);
        assert!(started.elapsed() >= Duration::from_millis(350));

        let mut calls = 0;
        let r: Result<(), _> = retry(Duration::from_millis(500), || {
            calls += 1;
            async { Err(sqlx::Error::RowNotFound) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a permanent error is not retried");
    }
}
