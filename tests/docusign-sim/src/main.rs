//! `docusign-sim`: the DocuSign simulator as a standalone server.
//!
//! ```text
//! docusign-sim --addr 127.0.0.1:PORT --client-id ID --client-secret SECRET \
//!     --redirect-uri URI [--redirect-uri URI2] [--interactive]
//! ```
//! Defaults come from DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_SECRET_KEY and
//! DOCUSIGN_REDIRECT_URI. Prints `docusign-sim listening on http://ADDR` once
//! ready, logs requests (method and path only) to stderr and runs until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use docusign_sim::{SimConfig, Simulator};

const USAGE: &str = "usage: docusign-sim [--addr 127.0.0.1:PORT] --client-id ID --client-secret SECRET \
--redirect-uri URI [--redirect-uri URI2 ...] [--interactive]

  --addr           address to listen on (default 127.0.0.1:0, a free port)
  --client-id      integration key      (default: env DOCUSIGN_INTEGRATION_KEY)
  --client-secret  secret key           (default: env DOCUSIGN_SECRET_KEY)
  --redirect-uri   registered redirect URI, repeatable (default: env DOCUSIGN_REDIRECT_URI)
  --interactive    show a consent page with Accept / Cancel instead of deciding at once";

#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown argument {0}")]
    Unknown(String),
    #[error("invalid --addr {0}")]
    BadAddr(String),
    #[error("{0} is required")]
    Required(&'static str),
    #[error("help requested")]
    Help,
}

struct Args {
    addr: SocketAddr,
    config: SimConfig,
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, ArgError> {
    let mut addr = String::from("127.0.0.1:0");
    let mut client_id = None;
    let mut client_secret = None;
    let mut redirect_uris = Vec::new();
    let mut interactive = false;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| ArgError::MissingValue(name.to_string()));
        match name.as_str() {
            "--addr" => addr = value("--addr")?,
            "--client-id" => client_id = Some(value("--client-id")?),
            "--client-secret" => client_secret = Some(value("--client-secret")?),
            "--redirect-uri" => redirect_uris.push(value("--redirect-uri")?),
            "--interactive" => interactive = true,
            "-h" | "--help" => return Err(ArgError::Help),
            _ => return Err(ArgError::Unknown(name)),
        }
    }

    let addr: SocketAddr = addr.parse().map_err(|_| ArgError::BadAddr(addr))?;
    let client_id =
        client_id.or_else(|| non_empty_env("DOCUSIGN_INTEGRATION_KEY")).ok_or(ArgError::Required("--client-id"))?;
    let client_secret =
        client_secret.or_else(|| non_empty_env("DOCUSIGN_SECRET_KEY")).ok_or(ArgError::Required("--client-secret"))?;
    if redirect_uris.is_empty() {
        redirect_uris.extend(non_empty_env("DOCUSIGN_REDIRECT_URI"));
    }
    if redirect_uris.is_empty() {
        return Err(ArgError::Required("--redirect-uri"));
    }
    let mut config = SimConfig::new(client_id, client_secret, redirect_uris);
    config.interactive = interactive;
    Ok(Args { addr, config })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("docusign-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).with_target(false).init();

    let sim = match Simulator::start_on(args.config, args.addr).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("docusign-sim: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let base_url = sim.base_url();
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "docusign-sim listening on {base_url}");
    let _ = stdout.flush();

    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let args = parse_args(strings(&[
            "--addr",
            "127.0.0.1:9999",
            "--client-id=ik",
            "--client-secret",
            "s",
            "--redirect-uri",
            "http://a/cb",
            "--redirect-uri",
            "http://b/cb",
            "--interactive",
        ]))
        .unwrap();
        assert_eq!(args.addr.port(), 9999);
        assert_eq!(args.config.client_id, "ik");
        assert_eq!(args.config.redirect_uris.len(), 2);
        assert!(args.config.interactive);
    }

    #[test]
    fn rejects_unknown_and_missing() {
        assert!(matches!(parse_args(strings(&["--bogus"])), Err(ArgError::Unknown(_))));
        assert!(matches!(parse_args(strings(&["--addr"])), Err(ArgError::MissingValue(_))));
    }
}
