//! Runs the real `ironfenced` binary on a config in a temp dir and the real
//! `ironfence` CLI against it. Every daemon started is killed by PID on drop.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_ironfenced");
pub const CLI: &str = env!("CARGO_BIN_EXE_ironfence");

/// A temp dir with a config; `@DIR@` in the text is replaced by the dir.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Lab {
    pub fn new(config_text: &str) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("ironfence-test-")
            .tempdir()
            .unwrap();
        let text = config_text.replace("@DIR@", &dir.path().display().to_string());
        let config = dir.path().join("ironfence.toml");
        std::fs::write(&config, text).unwrap();
        Lab { dir, config }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("ironfenced.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Start the daemon without waiting for it (it may refuse to start).
    /// On this host nothing may touch a real watchdog or sysrq: the guard
    /// is always set.
    pub fn spawn(&self) -> Daemon {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = Command::new(DAEMON)
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg("debug")
            .env("IRONFENCE_FORBID_HARDWARE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: self.dir.path().join("daemon.log"),
        }
    }

    /// Start the daemon and wait until it answers.
    pub fn start(&self) -> Daemon {
        let mut d = self.spawn();
        let start = Instant::now();
        loop {
            let out = self.cli(&["devices"]);
            if out.status.success() {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ironfenced did not come up: {}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!("ironfenced exited ({st}): {}", d.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run the CLI with `--socket` and `--config` of this lab.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }

    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CLI);
        c.arg("--socket").arg(self.socket()).args(args);
        c.env_remove("IRONFENCE_CONFIG");
        c.env("IRONFENCE_FORBID_HARDWARE", "1");
        c
    }

    /// Run the CLI with `--output json` and parse stdout.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let out = self.cli(&full);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): stdout={} stderr={}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGTERM and wait.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.child.wait().unwrap()
    }
    /// Send a signal by name (TERM, USR1, STOP, CONT...).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }
    /// Wait for the process to exit by itself, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
    /// Wait until the log contains `needle`, at most `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Make a path and its parents traversable by other users (for uid tests).
pub fn open_up(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
