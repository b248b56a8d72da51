//! Netfilter lines (scaffold; filled in by the family's parser).

use serde::Serialize;

/// A parsed Netfilter message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NetfilterEvent<'a> {
    /// Placeholder until the parser lands.
    Line {
        /// The message text.
        text: &'a str,
    },
}

/// Parses the message part of a Netfilter line; `None` when its shape is unknown.
pub fn parse<'a>(_program: &'a str, _message: &'a str) -> Option<NetfilterEvent<'a>> {
    None
}
