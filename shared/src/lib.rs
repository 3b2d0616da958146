//! The DocuSign connector's shared crate. Layers, each using only those below:
//!
//! - [`http`]: API Gateway events in, responses out;
//! - use cases: [`connect`] (consent, callback, status, disconnect);
//! - ports: [`store::TokenStore`], [`cipher::TokenCipher`],
//!   [`docusign::DocuSignAuth`], [`clock::Clock`];
//! - adapters: [`store::dynamo`], [`cipher::KmsCipher`], [`docusign::oauth`];
//! - the ground: [`config`], [`error`], records in [`store`].

pub mod app;
pub mod auth;
pub mod cipher;
pub mod clock;
pub mod config;
pub mod connect;
pub mod docusign;
pub mod envelope;
pub mod error;
pub mod http;
pub mod pages;
pub mod refresh;
pub mod sweep;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use config::Needs;
