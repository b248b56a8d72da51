//! The mailwarden crate's single integration-test binary: end-to-end tests
//! against a real Postfix + Dovecot lab, and CLI tests that run the built
//! binary in a temporary directory.

mod cli;
mod detect;
mod detect_lab;
mod dmarc;
mod dns;
mod e2e_mail;
mod e2e_parsed;
mod investigate;
mod keep;
mod serve_alerts;
mod support;
