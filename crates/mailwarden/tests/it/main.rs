//! The mailwarden crate's single integration-test binary.

mod e2e_mail;
