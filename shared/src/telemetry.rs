//! Logging: one JSON object per line on stdout, as Lambda's JSON log format
//! expects.
//!
//! The level comes from `RUST_LOG` or, when that is unset, from Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`; the default is `info`. It applies to **our own
//! crates only** (`shared` and the function binaries). Every dependency is
//! capped at INFO whatever is asked: at DEBUG and TRACE, `lambda_runtime`
//! logs raw invocation events (CRM JWTs, the callback's `code` and `state`,
//! confirmations, envelope bodies) and the AWS SDK logs request bodies (KMS
//! `Encrypt` carries plaintext tokens and the PKCE verifier).
//!
//! `RUST_LOG` may be a level (`trace`) or a comma-separated list of levels
//! and `target=level` directives (`info,shared::refresh=trace`); a directive
//! naming a dependency is capped too. Anything else (span or field filters)
//! is not understood: the level falls back to `info` and a warning says so.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;

/// The crates whose level follows the configuration: `shared` and every
/// function binary (package `consent-start` is crate `consent_start`).
pub const OUR_CRATES: &[&str] = &[
    "shared",
    "consent_start",
    "oauth_callback",
    "send_envelope",
    "connection",
    "token_refresh",
    "token_refresh_worker",
    "envelope_events",
    "envelope_status",
    "events_publisher",
];

/// The most any dependency may log.
pub const DEPENDENCY_CAP: LevelFilter = LevelFilter::INFO;

/// Which events are written, decided by target (`module::path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    /// The configured level: our crates' unless a directive names them.
    default: LevelFilter,
    /// `target=level` directives, as given (not yet capped).
    directives: Vec<(String, LevelFilter)>,
}

/// `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` could not be read as levels.
#[derive(Debug, thiserror::Error)]
#[error("{variable} is not a level or a list of target=level directives: {value:?}")]
pub struct FilterError {
    pub variable: &'static str,
    pub value: String,
}

impl LogFilter {
    /// The filter for `RUST_LOG` (first) or `AWS_LAMBDA_LOG_LEVEL`.
    pub fn from_values(rust_log: Option<&str>, lambda_level: Option<&str>) -> Result<Self, FilterError> {
        let mut filter = LogFilter { default: LevelFilter::INFO, directives: Vec::new() };
        let rust_log = rust_log.filter(|v| !v.trim().is_empty());
        if let (None, Some(raw)) = (rust_log, lambda_level.filter(|v| !v.trim().is_empty())) {
            filter.default = parse_level(raw)
                .ok_or_else(|| FilterError { variable: "AWS_LAMBDA_LOG_LEVEL", value: raw.to_owned() })?;
        }
        if let Some(raw) = rust_log {
            let invalid = || FilterError { variable: "RUST_LOG", value: raw.to_owned() };
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once('=') {
                    None => match parse_level(part) {
                        Some(level) => filter.default = level,
                        // A bare target means "everything" for that target.
                        None if is_target(part) => filter.directives.push((part.to_owned(), LevelFilter::TRACE)),
                        None => return Err(invalid()),
                    },
                    Some((target, level)) => {
                        let target = target.trim();
                        let level = parse_level(level).ok_or_else(invalid)?;
                        if !is_target(target) {
                            return Err(invalid());
                        }
                        filter.directives.push((target.to_owned(), level));
                    }
                }
            }
        }
        Ok(filter)
    }

    /// The most an event of `target` may log.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        // The most specific directive wins, as in `RUST_LOG`'s own syntax.
        let asked = self
            .directives
            .iter()
            .filter(|(t, _)| within(target, t))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, level)| *level);
        if is_ours(target) {
            asked
        } else {
            asked.min(DEPENDENCY_CAP)
        }
    }

    /// The most anything may log (a hint that skips disabled call sites).
    pub fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(t, l)| if is_ours(t) { *l } else { (*l).min(DEPENDENCY_CAP) })
            .chain([self.default])
            .max()
            .unwrap_or(self.default)
    }
}

/// `target` is `prefix` or a module inside it (`shared::refresh` is within
/// `shared`; `shared_memory` is not).
fn within(target: &str, prefix: &str) -> bool {
    target == prefix || target.strip_prefix(prefix).is_some_and(|rest| rest.starts_with("::"))
}

/// Whether `target` belongs to one of our crates.
pub fn is_ours(target: &str) -> bool {
    OUR_CRATES.iter().any(|c| within(target, c))
}

fn is_target(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
}

/// A level as `RUST_LOG` or Lambda spells it (Lambda's `FATAL` is `error`).
fn parse_level(raw: &str) -> Option<LevelFilter> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("fatal") {
        return Some(LevelFilter::ERROR);
    }
    LevelFilter::from_str(raw).ok()
}

/// Starts logging for a function binary (once; later calls do nothing).
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let rust_log = std::env::var("RUST_LOG").ok();
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let (filter, problem) = match LogFilter::from_values(rust_log.as_deref(), lambda_level.as_deref()) {
        Ok(filter) => (filter, None),
        Err(e) => (LogFilter::from_values(None, None).expect("the default filter"), Some(e)),
    };
    let hint = filter.max_level();
    let ours = filter.level_for("shared");
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_filter(
            tracing_subscriber::filter::filter_fn(move |meta| *meta.level() <= filter.level_for(meta.target()))
                .with_max_level_hint(hint),
        );
    let started = tracing_subscriber::registry().with(layer).try_init().is_ok();
    if !started {
        return;
    }
    if let Some(problem) = problem {
        tracing::warn!(error = %problem, "log level not understood; logging at info");
    }
    tracing::debug!(ours = %ours, dependencies = %ours.min(DEPENDENCY_CAP), "logging configured");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rust_log: Option<&str>, lambda: Option<&str>) -> LogFilter {
        LogFilter::from_values(rust_log, lambda).unwrap()
    }

    #[test]
    fn trace_reaches_our_crates_and_stops_at_info_for_every_dependency() {
        let f = filter(Some("trace"), None);
        for ours in [
            "shared",
            "shared::refresh",
            "consent_start",
            "oauth_callback",
            "send_envelope",
            "connection",
            "token_refresh",
        ] {
            assert_eq!(f.level_for(ours), LevelFilter::TRACE, "{ours}");
        }
        for dependency in [
            "lambda_runtime",
            "lambda_runtime::layers::api_response",
            "lambda_http",
            "aws_smithy_runtime::client::orchestrator",
            "aws_sdk_kms",
            "hyper_util::client",
            "reqwest::connect",
            "oauth2",
            "h2::codec",
            // Prefixes of our names are not ours.
            "shared_memory",
            "connection_pool::x",
        ] {
            assert_eq!(f.level_for(dependency), LevelFilter::INFO, "{dependency}");
        }
        assert_eq!(f.max_level(), LevelFilter::TRACE);
    }

    #[test]
    fn lambdas_own_log_level_is_used_when_rust_log_is_unset() {
        let f = filter(None, Some("TRACE"));
        assert_eq!(f.level_for("shared::http"), LevelFilter::TRACE);
        assert_eq!(f.level_for("lambda_runtime"), LevelFilter::INFO);
        let f = filter(None, Some("DEBUG"));
        assert_eq!(f.level_for("token_refresh"), LevelFilter::DEBUG);
        assert_eq!(f.level_for("aws_sdk_kms"), LevelFilter::INFO);
        // RUST_LOG wins when both are set.
        let f = filter(Some("warn"), Some("TRACE"));
        assert_eq!(filter(Some("shared=debug"), Some("VERBOSE")).level_for("lambda_runtime"), LevelFilter::INFO);
        assert_eq!(f.level_for("shared"), LevelFilter::WARN);
        assert_eq!(f.level_for("lambda_runtime"), LevelFilter::WARN);
        // Lambda's FATAL is error.
        assert_eq!(filter(None, Some("FATAL")).level_for("shared"), LevelFilter::ERROR);
    }

    #[test]
    fn a_quieter_level_quiets_dependencies_too() {
        let f = filter(Some("error"), None);
        assert_eq!(f.level_for("shared"), LevelFilter::ERROR);
        assert_eq!(f.level_for("lambda_runtime"), LevelFilter::ERROR);
        let f = filter(Some("off"), None);
        assert_eq!(f.level_for("aws_sdk_kms"), LevelFilter::OFF);
        assert_eq!(f.max_level(), LevelFilter::OFF);
    }

    #[test]
    fn unset_means_info_everywhere() {
        let f = filter(None, None);
        assert_eq!(f.level_for("shared"), LevelFilter::INFO);
        assert_eq!(f.level_for("hyper"), LevelFilter::INFO);
        assert_eq!(filter(Some(" "), Some("")), f);
    }

    #[test]
    fn a_directive_naming_a_dependency_is_capped_at_info() {
        let f = filter(Some("info,lambda_runtime=trace,aws_smithy_runtime=debug,shared::refresh=trace"), None);
        assert_eq!(f.level_for("lambda_runtime::layers"), LevelFilter::INFO);
        assert_eq!(f.level_for("aws_smithy_runtime::client"), LevelFilter::INFO);
        assert_eq!(f.level_for("shared::refresh"), LevelFilter::TRACE);
        assert_eq!(f.level_for("shared::http"), LevelFilter::INFO);
        assert_eq!(f.max_level(), LevelFilter::TRACE);
        // A bare target asks for everything of it: capped too.
        assert_eq!(filter(Some("hyper"), None).level_for("hyper::proto"), LevelFilter::INFO);
        // The most specific directive wins.
        let f = filter(Some("shared=warn,shared::refresh=debug"), None);
        assert_eq!(f.level_for("shared::refresh"), LevelFilter::DEBUG);
        assert_eq!(f.level_for("shared::store"), LevelFilter::WARN);
    }

    #[test]
    fn what_is_not_a_level_is_refused_naming_the_variable() {
        let e = LogFilter::from_values(Some("shared[span{x}]=trace"), None).unwrap_err();
        assert_eq!(e.variable, "RUST_LOG");
        let e = LogFilter::from_values(Some("shared=loud"), None).unwrap_err();
        assert_eq!(e.variable, "RUST_LOG");
        let e = LogFilter::from_values(None, Some("VERBOSE")).unwrap_err();
        assert_eq!(e.variable, "AWS_LAMBDA_LOG_LEVEL");
        assert!(e.to_string().contains("AWS_LAMBDA_LOG_LEVEL"));
    }
}
