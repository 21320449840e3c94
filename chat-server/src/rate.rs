//! Per-user rate limits (GCRA via `governor`), one keyed limiter per class of request.

use std::num::NonZeroU32;

use chat_protocol::{ErrorBody, UserId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;

/// Which budget a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateClass {
    /// `message:send`.
    Send,
    /// `typing:start` and `typing:stop`.
    Typing,
    /// Every other request.
    Other,
}

impl RateClass {
    /// The class's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Typing => "typing",
            Self::Other => "other",
        }
    }
}

/// The server's limiters.
#[derive(Debug)]
pub struct RateLimiters {
    send: DefaultKeyedRateLimiter<UserId>,
    typing: DefaultKeyedRateLimiter<UserId>,
    other: DefaultKeyedRateLimiter<UserId>,
    clock: DefaultClock,
}

fn keyed(per_sec: u32) -> DefaultKeyedRateLimiter<UserId> {
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_sec.saturating_mul(2)).unwrap_or(rate);
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimiters {
    /// Limiters for the configured rates, each with a burst of twice its rate.
    pub fn new(rates: &RateLimits) -> Self {
        Self {
            send: keyed(rates.send_per_sec),
            typing: keyed(rates.typing_per_sec),
            other: keyed(rates.other_per_sec),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `user`'s budget, or says how long to wait.
    pub fn check(&self, class: RateClass, user: &UserId) -> Result<(), ErrorBody> {
        self.limiter(class).check_key(user).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ErrorBody::rate_limited(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1))
        })
    }

    /// Takes `extra` more requests from `user`'s budget of `class` (for a request that
    /// weighs more than one), or says how long to wait.
    pub fn check_extra(
        &self,
        class: RateClass,
        user: &UserId,
        extra: u32,
    ) -> Result<(), ErrorBody> {
        let Some(extra) = NonZeroU32::new(extra) else {
            return Ok(());
        };
        let limiter = self.limiter(class);
        match limiter.check_key_n(user, extra) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ErrorBody::rate_limited(
                    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
                ))
            }
            // More than the whole burst: it can never pass, so say so rather than "wait".
            Err(_) => Err(ErrorBody::new(
                chat_protocol::ErrorCode::TooLarge,
                "the request weighs more than the whole rate limit allows",
            )),
        }
    }

    fn limiter(&self, class: RateClass) -> &DefaultKeyedRateLimiter<UserId> {
        match class {
            RateClass::Send => &self.send,
            RateClass::Typing => &self.typing,
            RateClass::Other => &self.other,
        }
    }

    /// Forgets users whose budgets are full again, so memory does not grow with every user ever seen.
    pub fn forget_idle(&self) {
        self.send.retain_recent();
        self.typing.retain_recent();
        self.other.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ErrorCode;

    #[test]
    fn burst_is_twice_the_rate_then_refused_with_a_delay() {
        let limiters = RateLimiters::new(&RateLimits {
            send_per_sec: 5,
            typing_per_sec: 1,
            other_per_sec: 1,
        });
        let alice = UserId::new("alice").expect("valid");
        let bob = UserId::new("bob").expect("valid");
        for _ in 0..10 {
            limiters
                .check(RateClass::Send, &alice)
                .expect("inside burst");
        }
        let refused = limiters
            .check(RateClass::Send, &alice)
            .expect_err("over burst");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 200));
        limiters
            .check(RateClass::Send, &bob)
            .expect("bob has his own budget");
        limiters
            .check(RateClass::Other, &alice)
            .expect("classes are separate");
    }
}
