//! Durations as workflows write them (`30`, `500ms`, `2m`, `1h 30m`) and as messages show them.

use std::time::Duration;

use serde_json::Value;

/// Parses seconds (`30`, `1.5`) or a duration such as `500ms`, `30s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(secs) if secs >= 0.0 && secs.is_finite() => Duration::try_from_secs_f64(secs).ok(),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(t).ok(),
    }
}

/// [`parse_duration`] for a JSON value: a number of seconds or a duration string.
pub fn duration_from_value(v: &Value) -> Option<Duration> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .and_then(|f| Duration::try_from_secs_f64(f).ok()),
        Value::String(s) => parse_duration(s),
        _ => None,
    }
}

/// A short human form: `250ms`, `3s`, `1.5s`, `2m`, `2m 30s`, `1h 5m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(
            duration_from_value(&serde_json::json!(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(150)), "2m 30s");
        assert_eq!(format_duration(Duration::from_secs(3900)), "1h 5m");
    }
}
