//! The placement layer: PHP where PHP should not be (an image with `<?php`
//! after its header), `.htaccess` lines that make other extensions run as
//! PHP, and `auto_prepend_file`/`auto_append_file`, which run a file before
//! every script.

use memchr::memmem;

use super::{Collector, Layer, Strength};

/// Extensions PHP runs under a usual configuration.
const PHP_EXTS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phps", "phar", "inc",
];
/// Extensions of data files that must never hold PHP.
const DATA_EXTS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "ico", "bmp", "webp", "tif", "tiff", "txt", "log", "css", "pdf", "zip",
    "mp3", "mp4", "woff", "woff2", "ttf", "eot", "svg",
];
const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "gif", "ico", "bmp", "webp", "tif", "tiff"];

/// The last extension of a name or path, lowercased (without the dot).
fn ext(name: &[u8]) -> Vec<u8> {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    match base.iter().rposition(|&b| b == b'.') {
        Some(p) if p > 0 => base[p + 1..].to_ascii_lowercase(),
        _ => Vec::new(),
    }
}

fn ext_in(name: &[u8], set: &[&str]) -> bool {
    let e = ext(name);
    !e.is_empty() && set.iter().any(|s| s.as_bytes() == e.as_slice())
}

/// Whether PHP runs a file of this name (`x.php`, `shell.phtml`).
pub(crate) fn is_php_name(name: &[u8]) -> bool {
    ext_in(name.trim_ascii(), PHP_EXTS)
}

/// Whether the name has a data extension (image, text) that PHP should
/// never run.
pub(crate) fn is_non_php_ext(name: &[u8]) -> bool {
    ext_in(name.trim_ascii(), DATA_EXTS)
}

/// Whether the name is one of the web server's script kinds (PHP or the
/// other server-side languages webshells come in).
pub(crate) fn is_script_name(name: &[u8]) -> bool {
    is_php_name(name) || ext_in(name, &["asp", "aspx", "jsp", "jspx", "cgi", "pl", "py", "sh"])
}

/// The file's base name.
pub(crate) fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Where the first PHP open tag (`<?php` followed by a space, or `<?=`) is.
pub(crate) fn php_tag(bytes: &[u8]) -> Option<usize> {
    let finder = memmem::Finder::new(b"<?");
    for p in finder.find_iter(bytes) {
        let rest = &bytes[p + 2..];
        if rest.len() >= 4 && rest[..3].eq_ignore_ascii_case(b"php") && rest[3].is_ascii_whitespace() {
            return Some(p);
        }
        if rest.first() == Some(&b'=') && rest.get(1).is_some_and(|&c| c == b' ' || c == b'$') {
            return Some(p);
        }
    }
    None
}

fn has_image_magic(b: &[u8]) -> bool {
    b.starts_with(b"\xff\xd8\xff")
        || b.starts_with(b"\x89PNG")
        || b.starts_with(b"GIF8")
        || b.starts_with(b"BM")
        || b.starts_with(b"\0\0\x01\0")
        || b.starts_with(b"RIFF")
        || b.starts_with(b"II*\0")
        || b.starts_with(b"MM\0*")
}

/// Placement checks for one file. Returns whether the file holds PHP
/// although its name says it should not (so the caller scans its code).
pub(crate) fn check(name: &str, bytes: &[u8], out: &mut Collector) -> bool {
    let base = base_name(name).to_ascii_lowercase();
    if base == ".htaccess" {
        htaccess(bytes, out);
        return false;
    }
    if base == ".user.ini" || base == "php.ini" {
        ini(bytes, out);
        return false;
    }
    if !is_non_php_ext(base.as_bytes()) {
        return false;
    }
    let Some(at) = php_tag(bytes) else { return false };
    let image = ext_in(base.as_bytes(), IMAGE_EXTS);
    if image && has_image_magic(bytes) {
        out.add(
            "placement.php-in-image",
            Layer::Placement,
            Strength::Strong,
            at as u32,
            || "PHP code after an image header (an image that runs as PHP once included or mapped)".into(),
        );
    } else if image {
        out.add(
            "placement.php-in-image",
            Layer::Placement,
            Strength::Strong,
            at as u32,
            || "PHP code in a file named as an image".into(),
        );
    } else {
        out.add(
            "placement.php-in-non-php",
            Layer::Placement,
            Strength::Medium,
            at as u32,
            || {
                format!(
                    "PHP code in a .{} file",
                    String::from_utf8_lossy(&ext(base.as_bytes()))
                )
            },
        );
    }
    true
}

/// Whether an `auto_prepend_file` target looks planted: a data extension, a
/// temporary or upload directory, or a stream wrapper.
fn planted_target(v: &[u8]) -> bool {
    let v = v.trim_ascii().trim_matches_quotes();
    let lv = v.to_ascii_lowercase();
    is_non_php_ext(&lv)
        || [
            &b"/tmp/"[..],
            b"/dev/shm",
            b"/var/tmp",
            b"upload",
            b"data:",
            b"php://",
            b"http://",
            b"https://",
        ]
        .iter()
        .any(|n| memmem::find(&lv, n).is_some())
}

trait TrimQuotes {
    fn trim_matches_quotes(&self) -> &[u8];
}

impl TrimQuotes for [u8] {
    fn trim_matches_quotes(&self) -> &[u8] {
        let mut s = self;
        while let [b'"' | b'\'', rest @ ..] = s {
            s = rest;
        }
        while let [rest @ .., b'"' | b'\''] = s {
            s = rest;
        }
        s
    }
}

fn prepend(directive: &[u8], value: &[u8], pos: usize, out: &mut Collector) {
    let v = value.trim_ascii().trim_matches_quotes();
    if v.is_empty() || v.eq_ignore_ascii_case(b"none") {
        return;
    }
    let d = String::from_utf8_lossy(directive).into_owned();
    if planted_target(v) {
        out.add(
            "placement.auto-prepend",
            Layer::Placement,
            Strength::Strong,
            pos as u32,
            || format!("{d} runs a file from a data, temporary or upload location before every script"),
        );
    } else {
        out.add(
            "placement.auto-prepend",
            Layer::Placement,
            Strength::Medium,
            pos as u32,
            || format!("{d} runs a file before or after every script"),
        );
    }
}

/// Lines of a config file with their byte offsets.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut off = 0usize;
    bytes.split(|&b| b == b'\n').map(move |l| {
        let at = off;
        off += l.len() + 1;
        (at, l)
    })
}

fn ini(bytes: &[u8], out: &mut Collector) {
    for (at, line) in lines(bytes) {
        let l = line.trim_ascii();
        if l.starts_with(b";") || l.starts_with(b"#") {
            continue;
        }
        let Some(eq) = l.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = l[..eq].trim_ascii();
        if key.eq_ignore_ascii_case(b"auto_prepend_file") || key.eq_ignore_ascii_case(b"auto_append_file") {
            prepend(key, &l[eq + 1..], at, out);
        }
    }
}

fn htaccess(bytes: &[u8], out: &mut Collector) {
    // Inside <Files>/<FilesMatch> whose pattern is not a PHP one, a handler
    // applies to the named non-PHP files.
    let mut section_non_php = false;
    for (at, line) in lines(bytes) {
        let l = line.trim_ascii();
        if l.starts_with(b"#") || l.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = l
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let d = words[0].to_ascii_lowercase();
        let php_handler = |w: &[u8]| memmem::find(&w.to_ascii_lowercase(), b"php").is_some();
        match d.as_slice() {
            b"<files" | b"<filesmatch" => {
                let pat = words[1..].concat().to_ascii_lowercase();
                section_non_php =
                    memmem::find(&pat, b"php").is_none() && memmem::find(&pat, b"phtml").is_none();
            }
            b"</files>" | b"</filesmatch>" => section_non_php = false,
            b"addtype" | b"addhandler" if words.len() >= 3 && php_handler(words[1]) => {
                let bad: Vec<String> = words[2..]
                    .iter()
                    .map(|e| e.trim_ascii_start().strip_prefix(b".").unwrap_or(e))
                    .filter(|e| !PHP_EXTS.iter().any(|p| p.as_bytes().eq_ignore_ascii_case(e)))
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect();
                if !bad.is_empty() {
                    out.add(
                        "placement.htaccess-handler",
                        Layer::Placement,
                        Strength::Strong,
                        at as u32,
                        || {
                            format!(
                                "{} makes .{} files run as PHP",
                                String::from_utf8_lossy(words[0]),
                                bad.join(" .")
                            )
                        },
                    );
                }
            }
            b"sethandler" | b"forcetype" if words.len() >= 2 && php_handler(words[1]) => {
                let strength = if section_non_php {
                    Strength::Strong
                } else {
                    Strength::Medium
                };
                out.add(
                    "placement.htaccess-handler",
                    Layer::Placement,
                    strength,
                    at as u32,
                    || {
                        format!(
                            "{} makes files run as PHP regardless of their extension",
                            String::from_utf8_lossy(words[0])
                        )
                    },
                );
            }
            b"php_value" | b"php_admin_value" if words.len() >= 3 => {
                let key = words[1];
                if key.eq_ignore_ascii_case(b"auto_prepend_file")
                    || key.eq_ignore_ascii_case(b"auto_append_file")
                {
                    prepend(key, &words[2..].concat(), at, out);
                }
            }
            _ => {}
        }
    }
}
