use std::time::Duration;

use super::{ExponentialBackoff, InvalidBackoff, RetryAfter};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exact(min: u64, max: u64) -> ExponentialBackoff {
    ExponentialBackoff::new(ms(min), ms(max), 0.0).expect("valid")
}

#[test]
fn steps_double_from_min_up_to_max() {
    let b = exact(200, 30_000);
    let steps: Vec<u64> = (0..10).map(|a| b.step(a).as_millis() as u64).collect();
    assert_eq!(
        steps,
        [
            200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000
        ]
    );
}

#[test]
fn the_cap_holds_for_any_number_of_failures() {
    let b = exact(200, 30_000);
    for attempt in [31, 32, 33, 63, 64, 127, 128, 1000, u32::MAX] {
        assert_eq!(b.step(attempt), ms(30_000), "attempt {attempt}");
    }
    // Tiny steps keep doubling until the cap, however far that is.
    let tiny = ExponentialBackoff::new(Duration::from_nanos(1), ms(30_000), 0.0).expect("valid");
    assert_eq!(tiny.step(34), Duration::from_nanos(1 << 34));
    assert_eq!(tiny.step(35), ms(30_000));
    let huge = ExponentialBackoff::new(Duration::MAX, Duration::MAX, 0.0).expect("valid");
    assert_eq!(huge.step(3), Duration::MAX);
}

#[test]
fn without_jitter_the_delay_is_the_step() {
    let b = exact(300, 2_000);
    let delays: Vec<Duration> = (0..5).map(|a| b.delay(a)).collect();
    assert_eq!(delays, [ms(300), ms(600), ms(1200), ms(2000), ms(2000)]);
}

#[test]
fn equal_jitter_waits_half_the_step_plus_up_to_half_at_random() {
    let b = ExponentialBackoff::new(ms(200), ms(30_000), 0.5).expect("valid");
    for attempt in 0..10 {
        let step = b.step(attempt);
        let (mut low, mut high) = (Duration::MAX, Duration::ZERO);
        for _ in 0..400 {
            let d = b.delay(attempt);
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} for {step:?}"
            );
            low = low.min(d);
            high = high.max(d);
        }
        // Really random: 400 draws do not all land in one tenth of the range.
        assert!(
            high - low > step / 20,
            "attempt {attempt}: {low:?}..{high:?}"
        );
    }
}

#[test]
fn jitter_halves_like_duration_division_even_for_odd_nanoseconds() {
    let step = Duration::new(1, 999_999_999);
    let b = ExponentialBackoff::new(step, step, 0.5).expect("valid");
    for _ in 0..100 {
        let d = b.delay(0);
        assert!(d >= step / 2 && d <= step / 2 + ms(999), "{d:?}");
    }
}

#[test]
fn tiny_steps_still_spread_over_a_millisecond() {
    let step = Duration::from_micros(10);
    let b = ExponentialBackoff::new(step, step, 0.5).expect("valid");
    let draws: Vec<Duration> = (0..200).map(|_| b.delay(0)).collect();
    assert!(
        draws
            .iter()
            .all(|d| *d == step / 2 || *d == step / 2 + ms(1))
    );
    assert!(draws.contains(&(step / 2)) && draws.contains(&(step / 2 + ms(1))));
}

#[test]
fn a_walk_doubles_and_reset_starts_again() {
    let mut walk = exact(100, 1_000).start();
    let first: Vec<Duration> = (0..6).map(|_| walk.next_delay()).collect();
    assert_eq!(
        first,
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
    assert_eq!(walk.attempt(), 6);
    walk.reset();
    assert_eq!(walk.attempt(), 0);
    assert_eq!(walk.next_delay(), ms(100));
    assert_eq!(walk.next_delay(), ms(200));
}

#[test]
fn retry_after_is_cut_to_the_cap() {
    let cap = Duration::from_secs(120);
    let short = RetryAfter::capped(Duration::from_secs(7), cap);
    assert_eq!(short.wait, Duration::from_secs(7));
    assert!(!short.was_cut());
    let at_cap = RetryAfter::capped(cap, cap);
    assert_eq!(at_cap.wait, cap);
    assert!(!at_cap.was_cut());
    let forever = RetryAfter::capped(Duration::from_secs(u64::from(u32::MAX)), cap);
    assert_eq!(forever.wait, cap);
    assert_eq!(forever.asked, Duration::from_secs(u64::from(u32::MAX)));
    assert!(forever.was_cut());
}

#[test]
fn retry_after_is_never_undercut_nor_exceeded_by_the_backoff() {
    let b = exact(200, 30_000);
    let cap = Duration::from_secs(120);
    // Longer than the backoff: the server's (capped) wish.
    let long = RetryAfter::capped(Duration::from_secs(3600), cap);
    assert_eq!(b.delay_honouring(0, Some(long)), cap);
    // Shorter than the backoff: the backoff.
    let short = RetryAfter::capped(ms(10), cap);
    assert_eq!(b.delay_honouring(3, Some(short)), ms(1600));
    assert_eq!(b.delay_honouring(3, None), ms(1600));
}

#[test]
fn invalid_inputs_are_rejected() {
    let cases: [(Duration, Duration, f64, &str); 6] = [
        (ms(2), ms(1), 0.0, "maximum must not be less than minimum"),
        (ms(0), ms(0), 0.0, "maximum must be non-zero"),
        (ms(1), ms(2), -0.1, "jitter must not be negative"),
        (ms(1), ms(2), 1.5, "jitter must not be greater than 1"),
        (ms(1), ms(2), f64::NAN, "jitter must be finite"),
        (ms(1), ms(2), f64::INFINITY, "jitter must be finite"),
    ];
    for (min, max, jitter, why) in cases {
        assert_eq!(
            ExponentialBackoff::new(min, max, jitter),
            Err(InvalidBackoff(why)),
            "{min:?} {max:?} {jitter}"
        );
    }
    let err = ExponentialBackoff::new(ms(2), ms(1), 0.0).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "invalid backoff: maximum must not be less than minimum"
    );
}

#[test]
fn edges_are_accepted() {
    for (min, max, jitter) in [
        (ms(0), ms(1), 0.0),
        (ms(5), ms(5), 1.0),
        (Duration::from_nanos(1), Duration::MAX, 0.5),
    ] {
        let b = ExponentialBackoff::new(min, max, jitter).expect("valid");
        assert_eq!((b.min(), b.max(), b.jitter()), (min, max, jitter));
    }
}
