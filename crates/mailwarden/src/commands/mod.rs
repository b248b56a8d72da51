//! Command implementations: turn parsed flags into library configs, run, print.

pub mod alerts;
pub mod detect;
pub mod dmarc;
pub mod dns;
pub mod doctor;
pub mod ingest;
pub mod inputs;
pub mod investigate;
pub mod logs;
pub mod rules;
pub mod serve;
pub mod status;
pub mod webscan;
