//! The answer to one store call: awaited by a task, or waited for by a plain thread.
//!
//! The store runs its calls on its own thread; the caller holds a [`Pending`] and either
//! awaits it (a task yields its worker meanwhile) or [`Pending::wait`]s for it (a thread
//! outside any runtime, or a synchronous method of the public API, which blocks just as a
//! SQLite call made in place would).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::StoreError;

#[derive(Debug)]
struct Slot<R> {
    value: Option<Result<R, StoreError>>,
    waker: Option<Waker>,
    /// Set once the answer was handed over (or the answering side gave up).
    done: bool,
}

#[derive(Debug)]
struct Shared<R> {
    slot: Mutex<Slot<R>>,
    ready: Condvar,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Slot<R>> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The caller's side: the store's answer, once it comes.
#[derive(Debug)]
#[must_use = "a store call's answer says whether it was done"]
pub(crate) struct Pending<R>(Arc<Shared<R>>);

/// The store's side: hands the answer over exactly once. Dropped without an answer (the
/// store's thread ended), the caller gets an error instead of waiting forever.
#[derive(Debug)]
pub(super) struct Answer<R>(Option<Arc<Shared<R>>>);

/// A fresh pair.
pub(super) fn channel<R>() -> (Answer<R>, Pending<R>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            waker: None,
            done: false,
        }),
        ready: Condvar::new(),
    });
    (Answer(Some(shared.clone())), Pending(shared))
}

impl<R> Pending<R> {
    /// Blocks this thread until the answer comes.
    pub(crate) fn wait(self) -> Result<R, StoreError> {
        let mut slot = self.0.lock();
        loop {
            if let Some(value) = slot.value.take() {
                return value;
            }
            if slot.done {
                return Err(stopped());
            }
            slot = self
                .0
                .ready
                .wait(slot)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl<R> Future for Pending<R> {
    type Output = Result<R, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(value);
        }
        if slot.done {
            return Poll::Ready(Err(stopped()));
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<R> Answer<R> {
    /// Hands `value` to the caller (dropped if the caller no longer waits).
    pub(super) fn send(mut self, value: Result<R, StoreError>) {
        if let Some(shared) = self.0.take() {
            finish(&shared, Some(value));
        }
    }
}

impl<R> Drop for Answer<R> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            finish(&shared, None);
        }
    }
}

fn finish<R>(shared: &Shared<R>, value: Option<Result<R, StoreError>>) {
    let waker = {
        let mut slot = shared.lock();
        slot.value = value;
        slot.done = true;
        slot.waker.take()
    };
    shared.ready.notify_all();
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn stopped() -> StoreError {
    StoreError::Io(std::io::Error::other(
        "the store's thread stopped before answering",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_waits_for_an_answer_sent_from_another() {
        let (answer, pending) = channel::<u32>();
        let sender = std::thread::spawn(move || answer.send(Ok(7)));
        assert_eq!(pending.wait().expect("answer"), 7);
        sender.join().expect("sender");
    }

    #[tokio::test]
    async fn a_task_awaits_an_answer_and_a_dropped_answer_is_an_error() {
        let (answer, pending) = channel::<u32>();
        tokio::task::spawn_blocking(move || answer.send(Ok(3)));
        assert_eq!(pending.await.expect("answer"), 3);
        let (answer, pending) = channel::<u32>();
        drop(answer);
        assert!(matches!(pending.await, Err(StoreError::Io(_))));
    }
}
