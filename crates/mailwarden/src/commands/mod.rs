//! Command implementations: turn parsed flags into library configs, run, print.

pub mod inputs;
pub mod logs;
