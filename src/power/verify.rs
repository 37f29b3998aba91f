//! Success only when observed: issue a power command, then read the state
//! back until it is the one asked for, all within one deadline.
//!
//! ```text
//!  command --ok--> read back --want--> Verified
//!     |               |  \--other--> wait verify_interval, read again
//!     |               \--error--> keep reading until the deadline
//!   error                          deadline --> NotObserved / Timeout
//! ```

use super::{PowerDevice, PowerError, PowerState};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// The state was read back as asked.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub elapsed: Duration,
    /// How many status reads it took.
    pub reads: u32,
}

/// Switch `plug` to `want` (`On` or `Off`) and read it back, within `limit`.
pub async fn set_and_verify(
    dev: &dyn PowerDevice,
    plug: &str,
    want: PowerState,
    limit: Duration,
    interval: Duration,
) -> Result<Verified, PowerError> {
    let start = Instant::now();
    let deadline = start
        .checked_add(limit)
        .unwrap_or_else(|| start + crate::config::MAX_DURATION);
    let timeout = |what: &str| PowerError::Timeout {
        device: dev.name().to_string(),
        what: what.to_string(),
        after: limit,
    };
    let cmd = match want {
        PowerState::Off => dev.off(plug),
        _ => dev.on(plug),
    };
    timeout_at(deadline, cmd)
        .await
        .map_err(|_| timeout(&format!("power {want} of {plug}")))??;
    let mut reads = 0;
    let mut last = PowerState::Unknown;
    let mut last_err: Option<PowerError> = None;
    loop {
        match timeout_at(deadline, dev.status(plug)).await {
            Err(_) => break,
            Ok(Ok(s)) => {
                reads += 1;
                last = s;
                if s == want {
                    return Ok(Verified {
                        elapsed: start.elapsed(),
                        reads,
                    });
                }
            }
            Ok(Err(e)) => last_err = Some(e),
        }
        if Instant::now() + interval >= deadline {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    if reads == 0 {
        if let Some(e) = last_err {
            return Err(e);
        }
        return Err(timeout(&format!("reading back power of {plug}")));
    }
    Err(PowerError::NotObserved {
        device: dev.name().to_string(),
        plug: plug.to_string(),
        want,
        last,
        after: limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimFault;
    use crate::power::sim::SimDevice;
    use crate::sim::SimBmc;
    use std::sync::Arc;

    fn dev(fault: SimFault) -> SimDevice {
        SimDevice::new(Arc::new(SimBmc::new(
            "bmc",
            fault,
            Duration::from_millis(50),
            true,
            vec!["n1".into()],
            None,
        )))
    }

    #[tokio::test(start_paused = true)]
    async fn observed_off() {
        let d = dev(SimFault::None);
        let v = set_and_verify(
            &d,
            "n1",
            PowerState::Off,
            Duration::from_secs(1),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(v.reads, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn liar_never_verified() {
        let d = dev(SimFault::Lies);
        let e = set_and_verify(
            &d,
            "n1",
            PowerState::Off,
            Duration::from_secs(1),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                PowerError::NotObserved {
                    last: PowerState::On,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silent_times_out() {
        let d = dev(SimFault::Silent);
        let e = set_and_verify(
            &d,
            "n1",
            PowerState::Off,
            Duration::from_secs(1),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(e.is_timeout(), "{e}");
    }
}
