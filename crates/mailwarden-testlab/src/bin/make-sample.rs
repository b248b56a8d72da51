//! `make-sample OUTPUT_DIR [--expectations]`: starts a private mail lab, runs
//! [`Scenario::run_sample`], waits until the lab is idle, stops it and copies
//! the logs to OUTPUT_DIR as `mail.log` (the Postfix mail server) and
//! `dovecot.log`. With `--expectations` it also writes `expectations.txt`,
//! one line per scenario step (the ground truth for the demo data).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use mailwarden_testlab::{LabOptions, MailLab, Scenario};

fn main() -> ExitCode {
    let mut out_dir = None;
    let mut with_expectations = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--expectations" => with_expectations = true,
            "-h" | "--help" => {
                println!("usage: make-sample OUTPUT_DIR [--expectations]");
                return ExitCode::SUCCESS;
            }
            _ if out_dir.is_none() && !arg.starts_with('-') => out_dir = Some(PathBuf::from(arg)),
            _ => {
                eprintln!(
                    "make-sample: unexpected argument {arg:?}\nusage: make-sample OUTPUT_DIR [--expectations]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(out_dir) = out_dir else {
        eprintln!("usage: make-sample OUTPUT_DIR [--expectations]");
        return ExitCode::from(2);
    };
    match run(&out_dir, with_expectations) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make-sample: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out_dir: &PathBuf, with_expectations: bool) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut lab = MailLab::start(LabOptions::default())?;
    eprintln!(
        "make-sample: lab running in {} ({:?})",
        lab.dir().display(),
        lab.ports()
    );
    let expectations = Scenario::run_sample(&lab)?;
    lab.wait_idle()?;
    lab.shutdown()?;
    fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for (src, name) in [(lab.mail_log(), "mail.log"), (lab.dovecot_log(), "dovecot.log")] {
        let dest = out_dir.join(name);
        fs::copy(src, &dest).map_err(|e| format!("copying {} to {}: {e}", src.display(), dest.display()))?;
        // Dovecot creates its log 0600; the copies are meant to be shared.
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("chmod 644 {}: {e}", dest.display()))?;
        written.push(dest);
    }
    if with_expectations {
        let dest = out_dir.join("expectations.txt");
        let text: String = expectations.iter().map(|e| format!("{e}\n")).collect();
        fs::write(&dest, text).map_err(|e| format!("writing {}: {e}", dest.display()))?;
        written.push(dest);
    }
    let accepted = expectations.iter().filter(|e| e.queue_id.is_some()).count();
    println!(
        "make-sample: {} scenario steps ({accepted} accepted messages) in {:.1?}",
        expectations.len(),
        started.elapsed()
    );
    for path in written {
        let lines = fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
        println!("wrote {} ({lines} lines)", path.display());
    }
    Ok(())
}
