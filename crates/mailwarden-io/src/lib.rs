//! mailwarden-io: everything that touches the outside world — opening and
//! decompressing inputs, reading bounded lines, and driving the core's pure
//! framing/parsing over them. The core never sees a file or a clock; this
//! crate passes in the reference time (file modification time, or now).

pub mod audit;
pub mod collect;
pub mod directory;
pub mod dns;
pub mod doctor;
pub mod forward;
pub mod input;
pub mod mailcow;
pub mod notify;
pub mod pipeline;
pub mod reports;
pub mod spf_eval;
pub mod verify;
pub mod webscan;
