//! Logging: text or JSON lines on stderr, filtered by `RUST_LOG` (default
//! `info`); colours only when stderr is a terminal and `NO_COLOR` is unset.
//! Nothing the operator logs carries Secret data: fields are names of
//! objects, reasons and error messages built from them. API errors are one
//! readable line ([`one_line`]): kube's own `Display` of `Error::Api` embeds
//! a `Debug` dump of the response.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// A kube error as one line: `API error <code> <reason>: <message>` for API
/// statuses, else the error and its causes joined by `: `.
pub fn one_line(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reason)
            };
            format!("API error {}{reason}: {}", s.code, s.message)
        }
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg = format!("{msg}: {text}");
                }
                src = s.source();
            }
            msg
        }
    }
}

/// Whether log lines may carry ANSI colours.
pub fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// kube's client logs response bodies: at `debug` an error `Status` (whose
/// message quotes rejected values, `Invalid value: "…"`, possibly a
/// rendered hook variable), at `warn` a body it could not decode (a
/// Secret's data). Capped at `error` whatever `RUST_LOG` asks for; the
/// errors themselves reach the operator's own logs redacted.
pub const SILENCED: &str = "kube_client::client=error";

/// `directives` (`RUST_LOG` syntax) with [`SILENCED`] on top.
pub fn filter(directives: &str) -> EnvFilter {
    EnvFilter::new(format!("{directives},{SILENCED}"))
}

/// Installs the global subscriber (once per process).
pub fn init(format: LogFormat) {
    let filter = filter(&std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn api_errors_are_one_readable_line() {
        let s = kube::core::Status {
            code: 404,
            reason: "NotFound".into(),
            message: "namespaces \"kubeflex-system\" not found".into(),
            ..kube::core::Status::default()
        };
        let line = one_line(&kube::Error::Api(Box::new(s)));
        assert_eq!(
            line,
            "API error 404 NotFound: namespaces \"kubeflex-system\" not found"
        );
        assert!(!line.contains("Status {"));
    }
}
