//! Postfix (scaffold).
use serde::Serialize;
/// A parsed Postfix message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PostfixEvent<'a> {
    /// text
    pub text: &'a str,
}
/// Parses a Postfix message.
pub fn parse<'a>(_program: &'a str, _message: &'a str) -> Option<PostfixEvent<'a>> {
    None
}
