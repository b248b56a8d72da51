//! Running `swaks` and reading its SMTP transcript.
//!
//! swaks prints what it sends as ` -> ` lines and what it receives as `<- `
//! (success) or `<** ` (error) lines; [`SwaksRun::exchanges`] pairs every
//! final server reply with the command it answered.

/// The result of one swaks run. SMTP-level rejections are normal results,
/// not errors: inspect [`SwaksRun::exchanges`] or [`SwaksRun::status`].
#[derive(Debug, Clone)]
pub struct SwaksRun {
    /// The command line that was run.
    pub command: String,
    /// swaks' exit code (0 = whole transaction accepted; 23/24/25/28 = MAIL,
    /// RCPT, DATA or AUTH rejected; `None` if killed by a signal).
    pub status: Option<i32>,
    /// The transcript swaks printed on stdout.
    pub stdout: String,
    /// swaks' own diagnostics.
    pub stderr: String,
}

/// One command and the server's final reply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpExchange {
    /// The command as sent (e.g. `RCPT TO:<bob@lab.test>`); the end of the
    /// message body is reported as `<end-of-data>`, the greeting as `<connect>`.
    pub command: String,
    /// The three-digit reply code.
    pub code: u16,
    /// The full final reply line without the code (e.g. `2.0.0 Ok: queued as 4Xyz`).
    pub text: String,
}

/// Command name used for the reply to the message body.
pub const END_OF_DATA: &str = "<end-of-data>";

impl SwaksRun {
    /// True if swaks exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Every (command, final reply) pair of the session, in order.
    pub fn exchanges(&self) -> Vec<SmtpExchange> {
        parse_transcript(&self.stdout)
    }

    /// The reply to the first command that starts with `prefix`
    /// (case-insensitive), e.g. `"AUTH"` or `"MAIL FROM"`.
    pub fn reply_to(&self, prefix: &str) -> Option<SmtpExchange> {
        self.exchanges().into_iter().find(|x| {
            x.command
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
    }

    /// The reply code given to `RCPT TO:<address>`.
    pub fn rcpt_reply(&self, address: &str) -> Option<SmtpExchange> {
        self.exchanges().into_iter().find(|x| {
            x.command.to_ascii_uppercase().starts_with("RCPT TO:")
                && rcpt_address(&x.command).eq_ignore_ascii_case(address)
        })
    }

    /// The Postfix queue id from the `250 ... queued as ID` reply, if the
    /// message was accepted.
    pub fn queue_id(&self) -> Option<String> {
        let reply = self
            .exchanges()
            .into_iter()
            .find(|x| x.command == END_OF_DATA && x.code == 250)?;
        let id = reply.text.split("queued as ").nth(1)?.split_whitespace().next()?;
        Some(id.to_owned())
    }

    /// Command line, exit status, stdout and stderr for error messages.
    pub fn transcript(&self) -> String {
        format!(
            "$ {}\n(exit status {:?})\n{}{}",
            self.command,
            self.status,
            self.stdout,
            if self.stderr.trim().is_empty() {
                String::new()
            } else {
                format!("--- stderr ---\n{}", self.stderr)
            }
        )
    }
}

fn rcpt_address(command: &str) -> &str {
    let rest = command.split_once(':').map_or("", |(_, r)| r).trim();
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    rest.split(['>', ' ']).next().unwrap_or("")
}

/// Pairs final replies with the command they answer.
fn parse_transcript(text: &str) -> Vec<SmtpExchange> {
    let mut out = Vec::new();
    let mut last_command: Option<String> = Some("<connect>".to_owned());
    let mut in_data = false;
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix(" -> ").or_else(|| line.strip_prefix(" ~> ")) {
            if !in_data {
                last_command = Some(cmd.to_owned());
            }
            continue;
        }
        let reply = ["<-  ", "<** ", "<~  ", "<~* "]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        let Some(reply) = reply else { continue };
        let code: Option<u16> = reply.get(..3).and_then(|c| c.parse().ok());
        let Some(code) = code else { continue };
        // Continuation lines ("250-...") are not final.
        if reply.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        let text = reply.get(4..).unwrap_or("").to_owned();
        let command = if in_data {
            in_data = false;
            END_OF_DATA.to_owned()
        } else {
            last_command.take().unwrap_or_default()
        };
        if command.eq_ignore_ascii_case("DATA") && code == 354 {
            in_data = true;
        }
        out.push(SmtpExchange { command, code, text });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"=== Trying 127.0.0.1:2525...
=== Connected to 127.0.0.1.
<-  220 mail.lab.test ESMTP
 -> EHLO client.example.net
<-  250-mail.lab.test
<-  250 CHUNKING
 -> AUTH PLAIN AGFsaWNl
<-  235 2.7.0 Authentication successful
 -> MAIL FROM:<a@example.net>
<-  250 2.1.0 Ok
 -> RCPT TO:<bob@lab.test>
<-  250 2.1.5 Ok
 -> RCPT TO:<x@elsewhere.test>
<** 554 5.7.1 <x@elsewhere.test>: Relay access denied
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Subject: hi
 -> 
 -> .
<-  250 2.0.0 Ok: queued as 4XyZ12
 -> QUIT
<-  221 2.0.0 Bye
"#;

    fn run(stdout: &str) -> SwaksRun {
        SwaksRun {
            command: "swaks".into(),
            status: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn pairs_replies_with_commands() {
        let r = run(SAMPLE);
        let codes: Vec<(String, u16)> = r.exchanges().into_iter().map(|x| (x.command, x.code)).collect();
        assert_eq!(codes[0], ("<connect>".into(), 220));
        assert_eq!(codes[1], ("EHLO client.example.net".into(), 250));
        assert_eq!(r.reply_to("auth").map(|x| x.code), Some(235));
        assert_eq!(r.rcpt_reply("bob@lab.test").map(|x| x.code), Some(250));
        assert_eq!(r.rcpt_reply("X@ELSEWHERE.test").map(|x| x.code), Some(554));
        assert_eq!(r.reply_to("DATA").map(|x| x.code), Some(354));
        assert_eq!(r.queue_id().as_deref(), Some("4XyZ12"));
        assert_eq!(r.reply_to("QUIT").map(|x| x.code), Some(221));
    }

    #[test]
    fn no_queue_id_when_rejected() {
        let r = run("<-  220 x\n -> MAIL FROM:<a@b>\n<** 554 5.7.1 no\n");
        assert_eq!(r.queue_id(), None);
        assert_eq!(r.reply_to("MAIL").map(|x| x.code), Some(554));
    }
}
