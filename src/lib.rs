//! gigs-notifier: receives signed Gigs webhook events, stores them durably, and sends
//! redacted notices about account changes to the operator's mail service.

pub mod admin;
pub mod app;
pub mod audit;
pub mod config;
pub mod dead_letters;
pub mod demo;
pub mod domain;
pub mod event;
pub mod gigs;
pub mod handlers;
pub mod http_error;
pub mod mail;
pub mod mask;
pub mod notice;
pub mod outbound;
pub mod replay;
pub mod request_context;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod templates_cli;
pub mod webhook;
pub mod worker;

pub use app::Application;
