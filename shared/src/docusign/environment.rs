//! Sandbox or production: which DocuSign platform the connector talks to.

use std::fmt;

/// Which DocuSign platform the connector talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocuSignEnvironment {
    Sandbox,
    Production,
}

impl DocuSignEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "sandbox" => Some(Self::Sandbox),
            "production" => Some(Self::Production),
            _ => None,
        }
    }

    /// DocuSign's account server for this environment.
    pub fn default_oauth_base(self) -> &'static str {
        match self {
            Self::Sandbox => "https://account-d.docusign.com",
            Self::Production => "https://account.docusign.com",
        }
    }
}

impl fmt::Display for DocuSignEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
