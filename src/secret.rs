//! Credentials that must never be printed: not in logs, not in `Debug`, not in
//! API replies, not in argv of child processes. [`Secret`] wraps the value and
//! [`PasswordSource`] says where it comes from (inline, file, script); it is
//! resolved at the moment of use so a rotated password file takes effect
//! without a restart.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent to a device or agent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a device's password comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordSource {
    None,
    Inline(Secret),
    /// First line of this file (trailing newline stripped).
    File(PathBuf),
    /// First line of this command's stdout (run with `/bin/sh -c`).
    Script(String),
}

/// A password could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The password file could not be read.
    #[error("cannot read password_file {path}: {source}; check the path and that ironfenced may read it")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The password script failed.
    #[error("password_script `{script}` failed: {detail}")]
    Script { script: String, detail: String },
}

impl PasswordSource {
    /// Resolve the password now. `timeout` bounds a password script.
    pub async fn resolve(&self, timeout: Duration) -> Result<Option<Secret>, SecretError> {
        match self {
            PasswordSource::None => Ok(None),
            PasswordSource::Inline(s) => Ok(Some(s.clone())),
            PasswordSource::File(path) => {
                let text =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| SecretError::File {
                            path: path.clone(),
                            source,
                        })?;
                Ok(Some(Secret::new(first_line(&text))))
            }
            PasswordSource::Script(script) => {
                let mut cmd = tokio::process::Command::new("/bin/sh");
                cmd.arg("-c")
                    .arg(script)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true);
                let out = tokio::time::timeout(timeout, cmd.output())
                    .await
                    .map_err(|_| SecretError::Script {
                        script: script.clone(),
                        detail: format!("no answer within {}", humantime::format_duration(timeout)),
                    })?
                    .map_err(|e| SecretError::Script {
                        script: script.clone(),
                        detail: e.to_string(),
                    })?;
                if !out.status.success() {
                    return Err(SecretError::Script {
                        script: script.clone(),
                        detail: format!("exited with {}", out.status),
                    });
                }
                Ok(Some(Secret::new(first_line(&String::from_utf8_lossy(
                    &out.stdout,
                )))))
            }
        }
    }
}

/// Bytes of a hex string (`0x` prefix allowed, even length).
pub fn decode_hex(h: &str) -> Option<Vec<u8>> {
    let h = h.trim();
    let h = h.strip_prefix("0x").unwrap_or(h);
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[tokio::test]
    async fn script_first_line() {
        let src = PasswordSource::Script("printf 'abc\\nxyz'".into());
        let got = src.resolve(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(got.expose(), "abc");
    }
}
