//! A bus receiver that wakes its task once per batch under load.
//!
//! A broadcast receiver that waits on an empty channel is woken by the next
//! send: under a mass boot that is one wake-up per event for every
//! consumer, paid by the sender too (a cross-thread unpark, an `eventfd`
//! write). [`Paced`] hands out what is queued without waiting; once it has
//! caught up, it waits [`BATCH_WINDOW`] before sleeping on the channel if
//! its last wake-up was that recent, so that a busy bus wakes each consumer
//! at most once per window and the events gathered meanwhile are taken in
//! one go. An idle consumer is woken by the first event at once.

use std::time::Duration;

use tokio::sync::broadcast::{Receiver, error::RecvError, error::TryRecvError};
use tokio::time::Instant;

/// How long a busy consumer lets events gather. Far below what anyone sees
/// (the console draws at most every 50 ms), far above the gap between
/// events under load; the bus holds thousands, so nothing is lost waiting.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// A broadcast receiver with batched wake-ups (see the module).
pub struct Paced<T> {
    rx: Receiver<T>,
    woke: Option<Instant>,
}

impl<T: Clone> Paced<T> {
    pub fn new(rx: Receiver<T>) -> Paced<T> {
        Paced { rx, woke: None }
    }

    /// The next event: one already queued at once, else the next to come,
    /// after [`BATCH_WINDOW`] when the last wake-up was within it.
    /// Cancel-safe, like the receiver's own `recv`.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        if let Some(v) = self.queued()? {
            // Found waiting: events are coming in as fast as they are
            // taken, which counts as a wake-up.
            self.woke.get_or_insert_with(Instant::now);
            return Ok(v);
        }
        if let Some(at) = self.woke.filter(|at| at.elapsed() < BATCH_WINDOW) {
            tokio::time::sleep_until(at + BATCH_WINDOW).await;
            if let Some(v) = self.queued()? {
                // Still busy: the next catch-up waits out a window again.
                self.woke = Some(Instant::now());
                return Ok(v);
            }
        }
        let v = self.rx.recv().await;
        self.woke = Some(Instant::now());
        v
    }

    fn queued(&mut self) -> Result<Option<T>, RecvError> {
        match self.rx.try_recv() {
            Ok(v) => Ok(Some(v)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        }
    }

    /// What is queued now, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast;

    #[tokio::test(start_paused = true)]
    async fn an_idle_consumer_gets_the_first_event_at_once() {
        let (tx, rx) = broadcast::channel(16);
        let mut paced = Paced::new(rx);
        let start = Instant::now();
        tx.send(1).unwrap();
        assert_eq!(paced.recv().await.unwrap(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_consumer_takes_what_gathered_in_one_wake_up() {
        let (tx, rx) = broadcast::channel(64);
        let mut paced = Paced::new(rx);
        tx.send(0).unwrap();
        assert_eq!(paced.recv().await.unwrap(), 0);
        let woke = Instant::now();
        let sender = tokio::spawn(async move {
            for i in 1..=4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.send(i).unwrap();
            }
            tx
        });
        // Caught up right after a wake-up: it waits out the window, and
        // the four sent meanwhile come in order with no wait between.
        assert_eq!(paced.recv().await.unwrap(), 1);
        assert_eq!(woke.elapsed(), BATCH_WINDOW);
        for i in 2..=4 {
            assert_eq!(paced.recv().await.unwrap(), i);
        }
        assert_eq!(woke.elapsed(), BATCH_WINDOW);
        let tx = sender.await.unwrap();
        // Quiet for a window: the next event is taken as soon as it comes.
        tokio::time::sleep(BATCH_WINDOW * 2).await;
        let late = Instant::now() + Duration::from_millis(1);
        tokio::spawn(async move {
            tokio::time::sleep_until(late).await;
            tx.send(11).unwrap();
        });
        assert_eq!(paced.recv().await.unwrap(), 11);
        assert_eq!(Instant::now(), late);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lag_and_a_close_come_through() {
        let (tx, rx) = broadcast::channel(2);
        let mut paced = Paced::new(rx);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert!(matches!(paced.recv().await, Err(RecvError::Lagged(3))));
        assert_eq!(paced.recv().await.unwrap(), 3);
        assert_eq!(paced.recv().await.unwrap(), 4);
        drop(tx);
        assert!(matches!(paced.recv().await, Err(RecvError::Closed)));
    }
}
