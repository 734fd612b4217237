//! What the user sees: progress (a spinner with the step and elapsed time on
//! a terminal, timestamped plain lines otherwise), notes, colours (only on a
//! terminal, never with `--no-color`/`NO_COLOR`), tables, and API errors as
//! one readable line.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Output settings of one run.
#[derive(Clone, Debug)]
pub struct Output {
    /// stdout is a terminal: spinner instead of lines.
    pub tty: bool,
    /// Colours allowed.
    pub color: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Structured output requested: progress goes to stderr only.
    pub quiet_progress: bool,
}

impl Output {
    /// From the terminal, `--no-color` and `NO_COLOR`.
    pub fn detect(no_color: bool, verbose: u8) -> Self {
        let tty = std::io::stdout().is_terminal();
        let env_no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            tty,
            color: tty && !no_color && !env_no_color,
            verbose,
            quiet_progress: false,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// A line on stdout (or stderr when structured output is asked).
    pub fn say(&self, msg: &str) {
        if self.quiet_progress {
            eprintln!("{msg}");
        } else {
            println!("{msg}");
        }
    }

    /// A warning on stderr.
    pub fn warn(&self, msg: &str) {
        let w = if self.color && std::io::stderr().is_terminal() {
            self.paint("33", "warning:")
        } else {
            "warning:".into()
        };
        eprintln!("{w} {msg}");
    }

    /// A note shown with `-v`, on stderr.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 {
            eprintln!("{msg}");
        }
    }

    /// Starts a long step.
    pub fn step(&self, msg: &str) -> Step {
        let started = Instant::now();
        if self.tty && !self.quiet_progress {
            let pb = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner:.cyan} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_strings(&["◐", "◓", "◑", "◒", "✔"]);
            pb.set_style(style);
            pb.set_message(msg.to_string());
            pb.enable_steady_tick(Duration::from_millis(100));
            Step {
                out: self.clone(),
                bar: Some(pb),
                started,
                last: msg.to_string(),
            }
        } else {
            self.say(&format!("{} {msg}", clock()));
            Step {
                out: self.clone(),
                bar: None,
                started,
                last: msg.to_string(),
            }
        }
    }
}

/// A running step.
pub struct Step {
    out: Output,
    bar: Option<ProgressBar>,
    started: Instant,
    last: String,
}

impl Step {
    /// The current sub-step (shown when it changes).
    pub fn update(&mut self, msg: &str) {
        if msg == self.last {
            return;
        }
        self.last = msg.to_string();
        match &self.bar {
            Some(pb) => pb.set_message(msg.to_string()),
            None => self.out.say(&format!("{} {msg}", clock())),
        }
    }

    /// Seconds since the step started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the step with a tick mark.
    pub fn done(self, msg: &str) {
        match &self.bar {
            Some(pb) => {
                pb.finish_and_clear();
                println!("{} {msg}", self.out.paint("32", "✔"));
            }
            None => self.out.say(&format!("{} {msg}", clock())),
        }
    }

    /// Ends the step without a message (an error follows).
    pub fn fail(self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// `HH:MM:SS` (UTC) for plain progress lines.
pub fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Now, RFC 3339 (for extension timestamps).
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Go's duration form, rounded to seconds: `1h2m3s`, `45s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A kube error as one line: the API status' code, reason and message
/// (kube's own `Display` embeds a `Debug` dump of the response). The
/// operator's formatter, so both binaries say it alike.
pub fn kube_error(e: &kube::Error) -> String {
    kubeflex_operator::telemetry::one_line(e)
}

/// Left-aligned columns separated by three spaces (kubectl's look).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(0)), "0s");
        assert_eq!(go_duration(Duration::from_millis(45_900)), "45s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "TYPE"],
            &[
                vec!["a".into(), "k8s".into()],
                vec!["long-name".into(), "host".into()],
            ],
        );
        assert_eq!(t, "NAME        TYPE\na           k8s\nlong-name   host\n");
    }

    #[test]
    fn api_errors_are_one_line() {
        let s = kube::core::Status {
            code: 404,
            reason: "NotFound".into(),
            message: "controlplanes \"x\" not found".into(),
            ..kube::core::Status::default()
        };
        let e = kube_error(&kube::Error::Api(Box::new(s)));
        assert_eq!(e, "API error 404 NotFound: controlplanes \"x\" not found");
    }
}
