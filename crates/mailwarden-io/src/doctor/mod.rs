//! The reading half of `mailwarden doctor`: files, procfs, the Docker API and
//! commands, turned into `mailwarden_core::doctor::Finding`s by the pure
//! decoders of `mailwarden_core::doctor`. Everything here is read-only.

pub mod docker;
pub mod evidence;
pub mod host;
pub mod mariadb;
