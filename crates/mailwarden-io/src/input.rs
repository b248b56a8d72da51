//! Opening log inputs: files (plain, gzip, bzip2, xz — detected by their magic
//! bytes, not their names), and standard input; and reading them as bounded
//! lines.
//!
//! A line longer than the limit is cut at the limit and the rest of it skipped,
//! so one hostile megabyte line costs bounded memory; the caller learns the
//! original length and records the line as `too_long`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Where an input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// A file on disk.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// Bytes held in memory (the bundled sample), with a display name.
    Memory {
        /// Shown in messages.
        name: String,
        /// The content (possibly compressed).
        bytes: &'static [u8],
    },
}

impl InputSource {
    /// The name used in messages: the path, `<stdin>`, or the memory name.
    pub fn display(&self) -> String {
        match self {
            InputSource::File(p) => p.display().to_string(),
            InputSource::Stdin => "<stdin>".to_owned(),
            InputSource::Memory { name, .. } => name.clone(),
        }
    }
}

/// The compression of an input, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file does not exist.
    #[error(
        "{path}: no such file; check the path (Mailcow keeps no log files on the host: read them with `docker logs` or from Redis)"
    )]
    NotFound {
        /// The path.
        path: String,
    },
    /// Permission denied.
    #[error(
        "{path}: permission denied; run as root or as a member of the `adm` group, or copy the file somewhere readable"
    )]
    PermissionDenied {
        /// The path.
        path: String,
    },
    /// A directory was given.
    #[error("{path}: is a directory; name the log files inside it (for example {path}/mail.log*)")]
    IsDirectory {
        /// The path.
        path: String,
    },
    /// Any other failure to open.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A read failed part-way (e.g. a truncated or corrupt compressed file).
    #[error(
        "{path}: read error after line {line}: {source}; the lines before it were processed (a truncated .gz from a rotation in progress looks like this)"
    )]
    Read {
        /// The path.
        path: String,
        /// The last complete line read.
        line: u64,
        /// The cause.
        source: io::Error,
    },
}

/// Shared counter of raw (possibly compressed) bytes read, for progress bars.
#[derive(Clone, Debug, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Bytes read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input.
pub struct OpenedInput {
    /// Decompressed content.
    pub reader: Box<dyn Read + Send>,
    /// Detected compression.
    pub compression: Compression,
    /// Size on disk (compressed), when known.
    pub size: Option<u64>,
    /// Modification time, when known (the reference for year-less stamps).
    pub modified: Option<SystemTime>,
    /// Raw bytes consumed so far.
    pub counter: ByteCounter,
}

const BUF: usize = 256 * 1024;

fn open_error(path: &Path, e: io::Error) -> InputError {
    let p = path.display().to_string();
    match e.kind() {
        io::ErrorKind::NotFound => InputError::NotFound { path: p },
        io::ErrorKind::PermissionDenied => InputError::PermissionDenied { path: p },
        io::ErrorKind::IsADirectory => InputError::IsDirectory { path: p },
        _ => InputError::Open { path: p, source: e },
    }
}

/// Opens an input and wraps the right decompressor around it.
pub fn open_input(src: &InputSource) -> Result<OpenedInput, InputError> {
    let counter = ByteCounter::default();
    let (raw, size, modified): (Box<dyn Read + Send>, Option<u64>, Option<SystemTime>) = match src {
        InputSource::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| open_error(path, e))?;
            if meta.is_dir() {
                return Err(InputError::IsDirectory {
                    path: path.display().to_string(),
                });
            }
            let f = File::open(path).map_err(|e| open_error(path, e))?;
            (Box::new(f), Some(meta.len()), meta.modified().ok())
        }
        InputSource::Stdin => (Box::new(io::stdin()), None, None),
        InputSource::Memory { bytes, .. } => (Box::new(*bytes), Some(bytes.len() as u64), None),
    };
    let mut buffered = BufReader::with_capacity(
        BUF,
        Counting {
            inner: raw,
            counter: counter.clone(),
        },
    );
    let head = match buffered.fill_buf() {
        Ok(h) => h,
        Err(e) => {
            return Err(InputError::Read {
                path: src.display(),
                line: 0,
                source: e,
            });
        }
    };
    let compression = Compression::sniff(head);
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUF,
            flate2::bufread::MultiGzDecoder::new(buffered),
        )),
        Compression::Bzip2 => Box::new(BufReader::with_capacity(
            BUF,
            bzip2::bufread::MultiBzDecoder::new(buffered),
        )),
        Compression::Xz => Box::new(BufReader::with_capacity(
            BUF,
            liblzma::bufread::XzDecoder::new_multi_decoder(buffered),
        )),
    };
    Ok(OpenedInput {
        reader,
        compression,
        size,
        modified,
        counter,
    })
}

/// One line read by [`LineReader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Length of the line in the input (without the terminator), even when cut.
    pub original_len: usize,
    /// Whether the line was cut at the limit.
    pub truncated: bool,
    /// Bytes of input the line took, terminator included (to compute offsets).
    pub consumed: usize,
}

/// Reads `\n`-terminated lines (a trailing `\r` is removed) from a stream,
/// handing out slices of its own block buffer so a line is not copied in the
/// common case. A line longer than `max_len` is cut to `max_len` bytes and the
/// rest of it skipped.
///
/// Hand-written rather than `BufRead::read_until` because that copies every
/// line into a second buffer, which costs a tenth of the whole pipeline.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    max_len: usize,
    long: Vec<u8>,
}

const BLOCK: usize = 1 << 20;

impl<R: Read> LineReader<R> {
    /// A reader keeping at most `max_len` bytes per line.
    pub fn new(inner: R, max_len: usize) -> LineReader<R> {
        let max_len = max_len.max(1);
        LineReader {
            inner,
            buf: vec![0; BLOCK.max(max_len + 1)],
            start: 0,
            end: 0,
            eof: false,
            max_len,
            long: Vec::new(),
        }
    }

    /// Moves the unread tail to the front and reads more. Returns false at EOF.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], LineInfo)>> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', pending) {
                let line_start = self.start;
                self.start += i + 1;
                if i > self.max_len {
                    let info = LineInfo {
                        original_len: i,
                        truncated: true,
                        consumed: i + 1,
                    };
                    return Ok(Some((&self.buf[line_start..line_start + self.max_len], info)));
                }
                return Ok(Some(Self::finish(&self.buf[line_start..line_start + i], i + 1)));
            }
            if pending.len() > self.max_len {
                return self.skip_long_line().map(Some);
            }
            if !self.refill()? {
                if self.start == self.end {
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                return Ok(Some(Self::finish(
                    &self.buf[line_start..self.end],
                    self.end - line_start,
                )));
            }
        }
    }

    fn finish(line: &[u8], consumed: usize) -> (&[u8], LineInfo) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (
            line,
            LineInfo {
                original_len: line.len(),
                truncated: false,
                consumed,
            },
        )
    }

    /// Keeps the first `max_len` bytes of an over-long line and skips to its end.
    fn skip_long_line(&mut self) -> io::Result<(&[u8], LineInfo)> {
        self.long.clear();
        self.long
            .extend_from_slice(&self.buf[self.start..self.start + self.max_len]);
        let mut total = 0usize;
        let mut newline = 0;
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', pending) {
                total += i;
                newline = 1;
                self.start += i + 1;
                break;
            }
            total += pending.len();
            self.start = self.end;
            if !self.refill()? {
                break;
            }
        }
        Ok((
            &self.long,
            LineInfo {
                original_len: total,
                truncated: true,
                consumed: total + newline,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn lines(data: &[u8], max: usize) -> Vec<(Vec<u8>, LineInfo)> {
        let mut r = LineReader::new(data, max);
        let mut out = Vec::new();
        while let Some((line, info)) = r.next_line().unwrap() {
            out.push((line.to_vec(), info));
        }
        out
    }

    #[test]
    fn splits_and_bounds_lines() {
        let got = lines(b"a\r\nbb\n\nccc", 100);
        let texts: Vec<&[u8]> = got.iter().map(|(l, _)| l.as_slice()).collect();
        assert_eq!(texts, vec![&b"a"[..], b"bb", b"", b"ccc"]);
        let long = [b'x'; 1000];
        let mut data = long.to_vec();
        data.extend_from_slice(b"\nnext\n");
        let got = lines(&data, 10);
        assert_eq!(got[0].0.len(), 10);
        assert_eq!(
            got[0].1,
            LineInfo {
                original_len: 1000,
                truncated: true,
                consumed: 1001
            }
        );
        assert_eq!(got[1].0, b"next");
        assert!(lines(b"", 10).is_empty());
        // Lines that straddle block boundaries, and a long line at the very end.
        let mut big = Vec::new();
        for i in 0..300_000 {
            big.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        big.extend_from_slice(&[b'y'; 5000]);
        let got = lines(&big, 4096);
        assert_eq!(got.len(), 300_001);
        assert_eq!(got[123_456].0, b"line 123456");
        assert_eq!(
            got[300_000].1,
            LineInfo {
                original_len: 5000,
                truncated: true,
                consumed: 5000
            }
        );
        // Offsets add up to the input size, CRLF and the missing final newline included.
        assert_eq!(got.iter().map(|(_, i)| i.consumed).sum::<usize>(), big.len());
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Compression::Xz
        );
        assert_eq!(Compression::sniff(b"Mar 14 00:00:00 host"), Compression::None);
    }

    #[test]
    fn reads_every_compression_the_same() {
        let text = b"line one\nline two\n";
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let plain = dir.path().join("mail.log");
        std::fs::write(&plain, text).unwrap();
        paths.push(plain);
        let gz = dir.path().join("mail.log.2.gz");
        let mut e = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap();
        paths.push(gz);
        let bz = dir.path().join("mail.log.3.bz2");
        let mut e = bzip2::write::BzEncoder::new(File::create(&bz).unwrap(), bzip2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap();
        paths.push(bz);
        let xz = dir.path().join("mail.log.4.xz");
        let mut e = liblzma::write::XzEncoder::new(File::create(&xz).unwrap(), 1);
        e.write_all(text).unwrap();
        e.finish().unwrap();
        paths.push(xz);
        for p in paths {
            let mut opened = open_input(&InputSource::File(p.clone())).unwrap();
            let mut s = String::new();
            opened.reader.read_to_string(&mut s).unwrap();
            assert_eq!(s.as_bytes(), text, "{}", p.display());
        }
    }

    #[test]
    fn open_errors_name_the_fix() {
        let e = open_input(&InputSource::File("/nonexistent/mail.log".into()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("no such file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = open_input(&InputSource::File(dir.path().to_owned()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_a_read_error_not_a_panic() {
        let mut data = Vec::new();
        let mut e = flate2::write::GzEncoder::new(&mut data, flate2::Compression::fast());
        e.write_all(&[b'a'; 10_000]).unwrap();
        e.finish().unwrap();
        data.truncate(data.len() / 2);
        let bytes: &'static [u8] = Box::leak(data.into_boxed_slice());
        let mut opened = open_input(&InputSource::Memory {
            name: "x".into(),
            bytes,
        })
        .unwrap();
        let mut r = LineReader::new(&mut opened.reader, 100);
        let mut got_err = false;
        loop {
            match r.next_line() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    got_err = true;
                    break;
                }
            }
        }
        assert!(got_err);
    }
}
