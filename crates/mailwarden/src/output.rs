//! Output plumbing: a buffered stdout, JSON lines, and recognising a closed
//! pipe so `mailwarden … | head` ends quietly.

use std::io::{self, BufWriter, Stdout, Write};

use serde::Serialize;

/// Buffered standard output.
pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::with_capacity(64 * 1024, io::stdout())
}

/// Writes one value as a JSON line.
pub fn json_line<W: Write + ?Sized, T: Serialize>(w: &mut W, v: &T) -> io::Result<()> {
    // serde_json keeps the I/O error's kind (a closed pipe stays BrokenPipe).
    serde_json::to_writer(&mut *w, v).map_err(io::Error::from)?;
    w.write_all(b"\n")
}

/// Whether an error chain ends in a broken pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
