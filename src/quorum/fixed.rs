//! [`Static`]: a quorum source for a cluster without corosync — one fixed
//! view, always alive. Used when the configuration names no quorum source;
//! it never changes its mind, so nothing may rely on it to detect a
//! partition.

use super::{check_interval, runtime, stamp_alive, QuorumError, QuorumSource, QuorumView};
use super::{QuorumWatch, Timing, WatchHandle};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A fixed view, stamped alive every interval until shutdown.
#[derive(Debug, Clone)]
pub struct Static {
    view: QuorumView,
    timing: Option<Timing>,
}

impl Static {
    /// A source that always reports `view`.
    pub fn new(view: QuorumView) -> Static {
        Static { view, timing: None }
    }

    /// A source that always reports a quorate cluster of `members`, seen from `this_node`.
    pub fn quorate(this_node: Option<u32>, members: Vec<u32>) -> Static {
        Static::new(QuorumView::quorate(this_node, members))
    }

    /// Report `timing` as the source's timing.
    pub fn with_timing(mut self, timing: Timing) -> Static {
        self.timing = Some(timing);
        self
    }
}

impl QuorumSource for Static {
    fn watch(
        self: Box<Self>,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<QuorumWatch, QuorumError> {
        check_interval(interval)?;
        let rt = runtime()?;
        // The view never changes; keep its sender alive until the watcher ends.
        let (view_tx, view) = watch::channel(self.view);
        let (alive_tx, alive) = watch::channel(Instant::now());
        let (handle, done) = WatchHandle::new();
        let (_responding_tx, responding) = watch::channel(true);
        rt.spawn(async move {
            stamp_alive(interval, alive_tx, responding, shutdown, done).await;
            drop(view_tx);
        });
        Ok(QuorumWatch {
            timing: self.timing,
            view,
            alive,
            handle,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn static_view_is_fixed_and_always_alive() {
        let (stop, shutdown) = watch::channel(false);
        let source: Box<dyn QuorumSource> = Box::new(Static::quorate(Some(2), vec![3, 2, 1]));
        let mut w = source.watch(Duration::from_secs(1), shutdown).unwrap();
        assert_eq!(
            *w.view.borrow(),
            QuorumView::quorate(Some(2), vec![1, 2, 3])
        );
        assert!(w.view.borrow().has_quorum());
        assert_eq!(w.timing, None);

        let start = Instant::now();
        for n in 1..=5u32 {
            w.alive.changed().await.unwrap();
            // the first stamp comes at once, then one per second
            assert_eq!(
                *w.alive.borrow(),
                start + Duration::from_secs(u64::from(n - 1))
            );
        }
        assert!(!w.handle.is_finished());
        stop.send_replace(true);
        assert!(w.handle.join_timeout(Duration::from_secs(5)).await);
        // the watcher is gone: the view's sender with it
        assert!(w.view.changed().await.is_err());
    }

    #[tokio::test]
    async fn static_rejects_a_zero_interval() {
        let (_stop, shutdown) = watch::channel(false);
        let source = Box::new(Static::quorate(Some(1), vec![1]));
        let err = source.watch(Duration::ZERO, shutdown).err().unwrap();
        assert!(matches!(err, QuorumError::BadInterval(_)), "{err}");
    }

    #[test]
    fn static_needs_a_runtime() {
        let (_stop, shutdown) = watch::channel(false);
        let source = Box::new(Static::quorate(Some(1), vec![1]));
        let err = source
            .watch(Duration::from_secs(1), shutdown)
            .err()
            .unwrap();
        assert!(matches!(err, QuorumError::NoRuntime), "{err}");
    }
}
