//! Helpers shared by the integration tests that drive the real `ironfence`
//! binary (`tests/agent_sim.rs`, `tests/config_errors.rs`): build a command
//! with a clean environment, feed it stdin, and describe what it did when an
//! assertion fails. Peers (xmllint, fence_ipmilan, ...) come from
//! `tests/support` (`require_peer`), which fails rather than skips.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `ironfence` binary cargo built for this test run.
pub fn ironfence_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ironfence"))
}

/// Root of this package (where `fence-agents/` lives).
pub fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for `program` that does not inherit anything from the
/// developer's environment that could change ironfence's behaviour.
pub fn clean_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "IRONFENCE",
        "IRONFENCE_CONFIG",
        "IRONFENCE_SOCKET",
        "IRONFENCE_LOG",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("LANG", "C.UTF-8");
    cmd
}

/// `ironfence ARGS...`.
pub fn ironfence<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = clean_command(&ironfence_bin());
    cmd.args(args);
    cmd
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit code; `None` if killed by a signal (a panic with panic=abort).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The command line, for messages.
    pub what: String,
}

impl Run {
    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.code, self.elapsed, self.stdout, self.stderr
        )
    }

    /// Panics (describing the run) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr\n{}",
            self.describe()
        );
        self
    }

    /// Panics unless stdout contains `needle`.
    #[track_caller]
    pub fn expect_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "expected {needle:?} in stdout\n{}",
            self.describe()
        );
        self
    }
}

/// No single run of the binary may take longer than this; a run that does
/// is killed (by its PID) and the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Run `cmd` to completion with `stdin` as its input (`None`: /dev/null).
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Run {
    run_within(cmd, stdin, RUN_LIMIT)
}

/// [`run`], killing the process and failing if it takes longer than `limit`.
pub fn run_within(cmd: &mut Command, stdin: Option<&str>, limit: Duration) -> Run {
    let what = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        // A child that exits before reading all of it is judged by its exit code.
        let _ = pipe.write_all(text.as_bytes());
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out_reader = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_reader = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not finish within {limit:?}; killed it (pid {})",
                    child.id()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    };
    let elapsed = started.elapsed();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed,
        what,
    }
}
