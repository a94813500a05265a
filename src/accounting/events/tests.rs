use super::*;

#[test]
fn every_kind_and_reason_has_its_own_limit() {
    let l = LogLimits::default();
    for r in DropReason::ALL {
        assert_eq!(
            l.points_dropped[r as usize].check(),
            Some(0),
            "{}",
            r.label()
        );
        assert_eq!(
            l.in_flight_dropped[r as usize].check(),
            Some(0),
            "{}",
            r.label()
        );
    }
    for b in BadInput::ALL {
        assert_eq!(l.bad_input[b as usize].check(), Some(0), "{}", b.label());
    }
    for r in Refusal::ALL {
        assert_eq!(
            l.delivery_refused[r as usize].check(),
            Some(0),
            "{}",
            r.label()
        );
    }
    for limit in [
        &l.connection_refused,
        &l.connection_idle,
        &l.delivery_retry,
        &l.spool_write_failed,
        &l.spool_corrupt,
        &l.spool_evicted,
        &l.spool_full_refused,
        &l.spool_lost,
        &l.accept_failed,
        &l.admin_connection_refused,
        &l.admin_connection_timed_out,
        &l.retry_after_capped,
        &l.connection_evicted,
        &l.partial_frame_closed,
        &l.keystone_redirected,
    ] {
        assert_eq!(limit.check(), Some(0));
    }
    assert_eq!(l.points_dropped[DropReason::Nan as usize].check(), None);
}

#[test]
fn rate_limit_lets_one_through_per_period_and_counts_the_rest() {
    let rl = RateLimit::new(Duration::from_secs(3600));
    assert_eq!(rl.check(), Some(0));
    assert_eq!(rl.check(), None);
    assert_eq!(rl.check(), None);
    let rl = RateLimit::new(Duration::from_millis(1));
    assert_eq!(rl.check(), Some(0));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(rl.check(), Some(0));
}
