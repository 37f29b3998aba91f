//! [`Manual`]: a fake quorum source for unit tests. Its [`ManualControl`]
//! sets the view (a partition, a lost corosync) and stops or restarts the
//! alive stamps (a hung corosync); the stamps run on tokio's clock, so
//! `tokio::time::pause()` drives them.

use super::{check_interval, runtime, stamp_alive, QuorumError, QuorumSource, QuorumView};
use super::{QuorumWatch, Timing, WatchHandle};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A quorum source whose every change comes from its [`ManualControl`].
#[derive(Debug)]
pub struct Manual {
    view: watch::Receiver<QuorumView>,
    responding: watch::Receiver<bool>,
    timing: Option<Timing>,
    refuse: bool,
}

/// Drives a [`Manual`] source, before and after `watch`.
#[derive(Debug, Clone)]
pub struct ManualControl {
    view: watch::Sender<QuorumView>,
    responding: watch::Sender<bool>,
}

impl Manual {
    /// A source reporting `initial` until told otherwise, responding.
    pub fn new(initial: QuorumView) -> (Manual, ManualControl) {
        let (view_tx, view) = watch::channel(initial);
        let (responding_tx, responding) = watch::channel(true);
        (
            Manual {
                view,
                responding,
                timing: None,
                refuse: false,
            },
            ManualControl {
                view: view_tx,
                responding: responding_tx,
            },
        )
    }

    /// Report `timing` as the source's timing.
    pub fn with_timing(mut self, timing: Timing) -> Manual {
        self.timing = Some(timing);
        self
    }

    /// `watch` fails as if corosync were not running.
    pub fn unreachable(mut self) -> Manual {
        self.refuse = true;
        self
    }
}

impl ManualControl {
    /// Replace the view (watchers are notified even if it is equal).
    pub fn set(&self, view: QuorumView) {
        self.view.send_replace(view);
    }

    /// Change the view in place; watchers are notified if it changed.
    pub fn update(&self, change: impl FnOnce(&mut QuorumView)) {
        self.view.send_if_modified(|v| {
            let before = v.clone();
            change(v);
            *v != before
        });
    }

    /// corosync went away: not connected, not quorate, no members.
    pub fn disconnect(&self) {
        self.update(|v| *v = QuorumView::disconnected(v.this_node));
    }

    /// false: the alive stamps stop (a hung corosync); true: they resume.
    pub fn set_responding(&self, responding: bool) {
        self.responding.send_replace(responding);
    }

    /// The view the source reports now.
    pub fn view(&self) -> QuorumView {
        self.view.borrow().clone()
    }
}

impl QuorumSource for Manual {
    fn watch(
        self: Box<Self>,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<QuorumWatch, QuorumError> {
        check_interval(interval)?;
        if self.refuse {
            return Err(QuorumError::Unreachable {
                step: "quorum_initialize",
                cause: "ErrLibrary (Manual::unreachable)".into(),
            });
        }
        let rt = runtime()?;
        let (alive_tx, alive) = watch::channel(Instant::now());
        let (handle, done) = WatchHandle::new();
        rt.spawn(stamp_alive(
            interval,
            alive_tx,
            self.responding,
            shutdown,
            done,
        ));
        Ok(QuorumWatch {
            timing: self.timing,
            view: self.view,
            alive,
            handle,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn three() -> QuorumView {
        QuorumView {
            ring: Some((1, 12)),
            ..QuorumView::quorate(Some(1), vec![1, 2, 3])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn manual_views_reach_the_watcher() {
        let (source, control) = Manual::new(three());
        let timing = Timing {
            token: Duration::from_millis(1000),
            consensus: Duration::from_millis(1200),
        };
        let (_stop, shutdown) = watch::channel(false);
        let mut w = Box::new(source.with_timing(timing))
            .watch(Duration::from_millis(500), shutdown)
            .unwrap();
        assert_eq!(w.timing, Some(timing));
        assert_eq!(*w.view.borrow_and_update(), three());

        // a partition: node 3 alone loses quorum
        control.update(|v| {
            v.quorate = false;
            v.members = vec![3];
            v.ring = Some((3, 16));
        });
        w.view.changed().await.unwrap();
        assert!(!w.view.borrow_and_update().has_quorum());
        assert_eq!(control.view().members, vec![3]);

        // an update that changes nothing does not wake the watcher
        control.update(|v| v.members = vec![3]);
        assert!(!w.view.has_changed().unwrap());

        control.disconnect();
        w.view.changed().await.unwrap();
        assert_eq!(*w.view.borrow(), QuorumView::disconnected(Some(1)));

        control.set(three());
        w.view.changed().await.unwrap();
        assert!(w.view.borrow().has_quorum());
    }

    #[tokio::test(start_paused = true)]
    async fn manual_stamps_stop_while_not_responding() {
        let (source, control) = Manual::new(three());
        let (stop, shutdown) = watch::channel(false);
        let interval = Duration::from_millis(500);
        let mut w = Box::new(source).watch(interval, shutdown).unwrap();
        w.alive.changed().await.unwrap();
        let t0 = *w.alive.borrow_and_update();

        control.set_responding(false);
        tokio::time::sleep(interval * 10).await;
        // at most the tick that raced the change
        let last = *w.alive.borrow_and_update();
        assert!(last <= t0 + interval, "stamped while not responding");
        assert!(!w.alive.has_changed().unwrap());

        control.set_responding(true);
        w.alive.changed().await.unwrap();
        assert!(*w.alive.borrow() >= t0 + interval * 10);

        stop.send_replace(true);
        assert!(w.handle.join_timeout(Duration::from_secs(5)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn manual_keeps_stamping_without_its_control() {
        let (source, control) = Manual::new(three());
        let (_stop, shutdown) = watch::channel(false);
        let mut w = Box::new(source)
            .watch(Duration::from_millis(100), shutdown)
            .unwrap();
        drop(control);
        for _ in 0..3 {
            w.alive.changed().await.unwrap();
        }
        assert!(!w.handle.is_finished());
    }

    #[tokio::test]
    async fn manual_unreachable_fails_like_a_missing_corosync() {
        let (source, _control) = Manual::new(three());
        let (_stop, shutdown) = watch::channel(false);
        let err = Box::new(source.unreachable())
            .watch(Duration::from_secs(1), shutdown)
            .err()
            .unwrap();
        assert!(err.to_string().contains("is corosync running"), "{err}");
    }
}
