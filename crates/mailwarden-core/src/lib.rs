//! mailwarden-core: the pure heart of mailwarden.
//!
//! Everything here is a function of its inputs: no file, socket or clock is
//! touched, so every framing, parser, stitcher and summary is table-testable.
//! The I/O crate feeds lines in; the binary decides what to print.
//!
//! Data flow: line → [`framing`] → [`parse`] → [`event::Event`] →
//! [`stitch`] (per-message records) → [`summary`] / [`search`].

pub mod detect;
pub mod doctor;
pub mod escape;
pub mod event;
pub mod framing;
pub mod investigate;
pub mod parse;
pub mod posture;
pub mod report;
pub mod sample;
pub mod search;
pub mod stitch;
pub mod summary;
pub mod time;
pub mod webscan;
