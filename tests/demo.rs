//! `make run`'s demo end to end: `DEMO_SELFTEST=1 scripts/demo.sh` with its own run directory
//! starts moto, the echo upstream, the local OpenID provider and Envoy, checks bearer tokens
//! and the browser sign-in (with chromium, a full sign-in), exits 0 and leaves no process.
//!
//! The script runs in its own process group. If it does not end within [`DEADLINE`] (under
//! nextest's 120 s), or the test fails before it ended, the whole group is stopped (TERM, then
//! KILL). The script's tools come from one venv: the directory of `ENVOY_BIN`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the self-check may take (about 10 s on a quiet machine).
const DEADLINE: Duration = Duration::from_secs(90);

/// `kill -s SIGNAL -- TARGET` (a pid, or `-pgid` for a process group); whether it reached one.
fn kill(signal: &str, target: &str) -> bool {
    Command::new("sh")
        .args(["-c", r#"kill -s "$0" -- "$1""#, signal, target])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The state letter and process group of `pid`, from /proc.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
    let mut fields = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// The live (not zombie) processes of process group `pgid`.
fn group(pgid: u32) -> Vec<u32> {
    pids()
        .filter(|&pid| stat(pid).is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z'))
        .collect()
}

/// Live processes whose command line names `dir` (chromium, which playwright starts in a
/// group of its own, names its profile there).
fn naming(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_str().unwrap();
    pids()
        .filter(|&pid| pid != std::process::id())
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(needle) && stat(pid)?.0 != 'Z').then_some((pid, cmd))
        })
        .collect()
}

/// The demo script, leader of its own process group. Until it has been reaped its pid (the
/// group's id) cannot be reused, so signalling the group never reaches anyone else.
struct Demo {
    child: Child,
    reaped: bool,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl Demo {
    fn start(venv: &Path, run_dir: &Path) -> Demo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new("bash");
        command.arg(root.join("scripts/demo.sh"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DEMO_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .env("DEMO_SELFTEST", "1")
            .env("DEMO_RUN_DIR", run_dir)
            .env("VENV", venv)
            .env("CEA_WASM", wasm_path())
            .env("CEA_SO", so_path())
            // The build under test: `make run` can start the demo on either.
            .env(
                "DEMO_BUILD",
                match build() {
                    Build::Wasm => "wasm",
                    Build::Native => "native",
                },
            )
            .current_dir(root)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Some(drain(child.stdout.take().unwrap()));
        let err = Some(drain(child.stderr.take().unwrap()));
        Demo {
            child,
            reaped: false,
            out,
            err,
        }
    }

    fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the script has exited (a zombie until reaped), polled until `deadline`.
    fn exited_by(&self, deadline: Instant) -> bool {
        loop {
            if stat(self.pgid()).is_none_or(|(state, _)| state == 'Z') {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every process left in the group: TERM, up to 10 s to go, then KILL.
    fn stop_group(&self) {
        let target = format!("-{}", self.pgid());
        if !kill("TERM", &target) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !group(self.pgid()).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        kill("KILL", &target);
    }

    /// Reaps the script and returns its status with everything it printed.
    fn finish(&mut self) -> (ExitStatus, String, String) {
        let status = self.child.wait().unwrap();
        self.reaped = true;
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        (status, out, err)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if !self.reaped {
            self.stop_group();
            let _ = self.child.wait();
        }
    }
}

fn venv() -> PathBuf {
    let bin = envoy_bin().parent().unwrap().to_path_buf();
    if let Some(moto) = std::env::var_os("MOTO_SERVER") {
        assert_eq!(
            Path::new(&moto).parent(),
            Some(bin.as_path()),
            "demo.sh takes envoy and moto_server from one venv (VENV): MOTO_SERVER must be next to ENVOY_BIN"
        );
    }
    bin.parent().unwrap().to_path_buf()
}

#[test]
fn make_run_checks_itself_and_stops_everything() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(&venv(), run_dir.path());

    let exited = demo.exited_by(Instant::now() + DEADLINE);
    // Before reaping the script (its group id stays ours): nothing of the demo may outlive it.
    let left_in_group = if exited {
        group(demo.pgid())
    } else {
        Vec::new()
    };
    if !exited || !left_in_group.is_empty() {
        demo.stop_group();
    }
    // Chromium ends with its driver (which closes it first, also when stopped): the processes
    // naming the run directory get up to 10 s to go.
    let settled = Instant::now() + Duration::from_secs(10);
    let left_elsewhere = loop {
        let left = naming(run_dir.path());
        if left.is_empty() || Instant::now() >= settled {
            break left;
        }
        thread::sleep(Duration::from_millis(50));
    };
    for (pid, _) in &left_elsewhere {
        kill("KILL", &pid.to_string());
    }
    let (status, out, err) = demo.finish();
    let printed = format!("--- stdout\n{out}--- stderr\n{err}");
    assert!(
        exited,
        "the demo was still running after {DEADLINE:?}\n{printed}"
    );
    assert!(
        left_in_group.is_empty() && left_elsewhere.is_empty(),
        "processes outlived the demo: group {left_in_group:?}, naming its run directory {left_elsewhere:?}\n{printed}"
    );
    assert!(status.success(), "demo.sh exited with {status}\n{printed}");

    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(
            &"self-check: no token → 401, bad token → 401, id token → 200, access token → 200"
        ),
        "{printed}"
    );
    let sign_in = lines
        .iter()
        .find_map(|l| l.strip_prefix("self-check sign-in: "))
        .unwrap_or_else(|| panic!("no sign-in self-check\n{printed}"));
    let browser = if Path::new("/usr/bin/chromium").exists() {
        "browser sign-in → echo page as alice@example.com (local_op), logout → the provider's /logout"
    } else {
        "browser sign-in → skipped (no /usr/bin/chromium)"
    };
    assert_eq!(
        sign_in,
        format!(
            "browser navigation → 302 to the provider's /oauth2/authorize (S256), \
             xhr without session → 401, {browser}"
        ),
        "{printed}"
    );
    assert!(
        !out.contains("FAILED") && !err.contains("FAILED"),
        "{printed}"
    );
}
