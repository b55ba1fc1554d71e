//! A timer that fires after a period without activity (a stream's keep-alive, an upstream read
//! timeout), kept as one timer-wheel entry for the whole stream.
//!
//! Re-arming a timer for every event (a `timeout` per read, a reset per token) adds and removes
//! a wheel entry per token. Here activity only notes its time, and the timer is moved when it
//! fires early. Nor is it polled again while it is armed for the task polling it: a stream's
//! task is woken for every token, and polling its timers on each wake was measurable (`perf`,
//! 2,000 concurrent streams).

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub struct SilenceTimer {
    limit: Duration,
    last_activity: Instant,
    /// Made at the first wait: a body that never waits (an answer read at once) never
    /// allocates or registers one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The task the timer will wake, once a poll has armed it.
    armed_for: Option<Waker>,
}

impl SilenceTimer {
    /// A timer for `limit` of silence, counted from now.
    pub fn new(limit: Duration) -> Self {
        Self { limit, last_activity: Instant::now(), timer: None, armed_for: None }
    }

    /// Something happened: the silence starts again from now.
    pub fn activity(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Ready once `limit` has passed without activity; the silence then counts from now again.
    pub fn poll_silent(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = self.limit;
        let last_activity = self.last_activity;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(last_activity + limit)));
        if !timer.is_elapsed() && self.armed_for.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                self.armed_for = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.armed_for = None;
            let now = Instant::now();
            let due = self.last_activity + limit;
            if due > now {
                timer.as_mut().reset(due);
                continue;
            }
            self.last_activity = now;
            timer.as_mut().reset(now + limit);
            return Poll::Ready(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn silent(timer: &mut SilenceTimer) {
        std::future::poll_fn(|cx| timer.poll_silent(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn it_fires_after_the_limit_without_activity_and_activity_postpones_it() {
        let limit = Duration::from_secs(10);
        let started = Instant::now();
        let mut timer = SilenceTimer::new(limit);
        silent(&mut timer).await;
        assert_eq!(started.elapsed(), limit);
        // Activity 4 s into the next period moves the silence to 14 s from the first one.
        let fired = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        timer.activity();
        silent(&mut timer).await;
        assert_eq!(fired.elapsed(), Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn polls_while_armed_still_see_it_fire() {
        let mut timer = SilenceTimer::new(Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(timer.poll_silent(&mut cx).is_pending());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(timer.poll_silent(&mut cx).is_ready());
    }
}
