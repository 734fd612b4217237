//! The one parser of duration flags (`--timeout`, `--interval`,
//! `--hook-timeout`, ...) for the operator, the reconciler and kflex.

use std::time::Duration;

/// `90s`, `1m30s`, `2h`, `500ms`, `1h 30m` (the units of `humantime`: ns,
/// us, ms, s, m, h, d, ...); a bare number is seconds, as KubeFlex's flags
/// take it. Used as a clap `value_parser`, whose error names the flag.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{e}: expected a duration such as 90s, 1m30s, 2h or 500ms"))
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn compound_durations() {
        let secs = Duration::from_secs;
        assert_eq!(parse("1m30s"), Ok(secs(90)));
        assert_eq!(parse("2h"), Ok(secs(7200)));
        assert_eq!(parse("90s"), Ok(secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse("300"), Ok(secs(300)));
        for bad in ["", "10x", "m5", "-1s", "1.5.3s", "1h30"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
