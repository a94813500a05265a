//! Keystone revokes every token issued in the same wall-clock second as a password change:
//! such a login answers 201 with a token that is already invalid. Provoked by updating the
//! Secret volume just before the change, at the start of a second: the forwarder's logins with
//! the new password are refused until the change lands, and the first one that succeeds comes
//! within the same second. The forwarder must then take Blueflood's 401, log in again with
//! backoff (no storm) and lose nothing. Repeated (bounded) until it happened at least once.

use std::collections::HashSet;
use std::time::Duration;

use super::{Case, logins, report, tokens_seen};
use crate::support::real_keystone::RealKeystone;

/// Password changes tried before giving up on provoking a same-second token.
const ATTEMPTS: u32 = 6;
/// The bound on a recovery: well under half a token's life (the forwarder's refresh).
const RECOVERY: Duration = Duration::from_secs(20);
/// Consecutive stored requests with new tokens that count as recovered.
const STABLE: usize = 5;

/// The answers to each token new since `before`, in order, run-length encoded
/// (`[401x1 200x9] [200x3]`), for the report.
fn answers_by_token(
    bf: &crate::support::blueflood::BluefloodDouble,
    before: &HashSet<String>,
) -> String {
    let mut tokens: Vec<(String, Vec<(u16, usize)>)> = Vec::new();
    for r in bf.requests() {
        let Some(t) = r.auth_token.filter(|t| !before.contains(t)) else {
            continue;
        };
        let i = match tokens.iter().position(|(seen, _)| *seen == t) {
            Some(i) => i,
            None => {
                tokens.push((t, Vec::new()));
                tokens.len() - 1
            }
        };
        let runs = &mut tokens[i].1;
        match runs.last_mut() {
            Some((status, count)) if *status == r.status => *count += 1,
            _ => runs.push((r.status, 1)),
        }
    }
    tokens
        .iter()
        .map(|(_, runs)| {
            let runs: Vec<String> = runs.iter().map(|(s, c)| format!("{s}x{c}")).collect();
            format!("[{}]", runs.join(" "))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Now as the forwarder's log writes it (UTC, to the millisecond), for the report.
fn wall_clock() -> String {
    let ms = crate::support::now_ms();
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// The forwarder's login lines (time and outcome) from `lines`, for the report.
fn auth_timeline(lines: &[String]) -> String {
    lines
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let what = match v["fields"]["message"].as_str().or(v["message"].as_str())? {
                "authenticated with Keystone" => "login ok",
                "Keystone authentication failed" => "login refused",
                "credentials changed; the cached token is dropped" => "new Secret read",
                _ => return None,
            };
            let at = v["timestamp"].as_str().unwrap_or_default();
            Some(format!("{} {what}", at.get(11..23).unwrap_or(at)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sleeps until just after the next whole wall-clock second.
async fn next_second() {
    let ms = crate::support::now_ms();
    tokio::time::sleep(Duration::from_millis((1000 - ms % 1000) as u64 + 5)).await;
}

pub(super) async fn same_second_revocation_is_recovered_without_a_storm(ks: &RealKeystone) {
    let mut case = Case::start(ks, "revocation", "revocation-pw-0", "revocation-pw-0").await;
    let name = case.name;
    // Load until the attempts are over (the task is stopped then; it reports what it sent).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (addr, stop) = (case.fwd.line, stop.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            let mut b = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += crate::reliability_child::line_load(
                    addr,
                    &format!("revocation.r{b}"),
                    1,
                    20,
                    Duration::from_millis(200),
                )
                .await;
                b += 1;
            }
            sent
        })
    };
    assert!(
        case.bf.wait_for_stored(1, Duration::from_secs(30)).await,
        "{name}: nothing delivered before the first password change"
    );
    let mut provoked = None;
    let mut per_attempt = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let before: HashSet<String> = tokens_seen(&case.bf).into_iter().map(|t| t.0).collect();
        let logins_before = logins(&case.fwd.status().await);
        let password = format!("revocation-pw-{attempt}");
        next_second().await;
        let log_from = case.fwd.log_lines().len();
        let written = wall_clock();
        case.rotate_secret(&password);
        ks.admin().set_password(&case.user, &password).await;
        let changed = wall_clock();
        // Recovered: the last few requests all stored with tokens new since the change (not
        // just one: requests already in flight may still come back). It takes a second or two; the bound stays under the
        // 30 s after which the forwarder would refresh anyway, so only the 401 -> re-login
        // path can meet it.
        let end = tokio::time::Instant::now() + RECOVERY;
        loop {
            let requests = case.bf.requests();
            let recent = &requests[requests.len().saturating_sub(STABLE)..];
            let recovered = recent.len() == STABLE
                && recent.iter().all(|r| {
                    r.status == 200 && r.auth_token.as_ref().is_some_and(|t| !before.contains(t))
                });
            if recovered {
                break;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{name}: attempt {attempt}: not delivering with a new token {RECOVERY:?} after \
                 the password change; log tail:\n{}",
                case.fwd.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = logins(&case.fwd.status().await);
        let spent = (after.0 - logins_before.0, after.1 - logins_before.1);
        per_attempt.push(spent);
        // A token first used after the change and refused by Keystone's validation: issued
        // (201) with the new password, so after the change, and yet revoked. Keystone serves
        // one request at a time here (one sync worker), so the change (new password, then its
        // revocation event) was complete before that login began: the token was revoked for
        // being issued in the same second as the event.
        let same_second = tokens_seen(&case.bf)
            .into_iter()
            .filter(|(t, refused)| !before.contains(t) && *refused)
            .count();
        // Refused logins: the auth backoff (10 ms doubling to 0.5 s) over the bcrypt-bound
        // password change; successful ones: one per same-second token, and the good one.
        assert!(
            spent.0 - spent.1 <= 6 && spent.1 <= 10,
            "{name}: attempt {attempt}: {} logins ({} refused) to recover: a storm; log tail:\n{}",
            spent.0,
            spent.1,
            case.fwd.log_tail(40)
        );
        if same_second > 0 {
            let timeline = auth_timeline(&case.fwd.log_lines()[log_from..]);
            provoked = Some((
                attempt,
                same_second,
                answers_by_token(&case.bf, &before),
                format!("Secret written {written}, password changed by {changed}; {timeline}"),
            ));
            break;
        }
        // Out of the old second before the next try.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.await.expect("load task");
    let (s, bf) = case.close_books(sent).await;
    let (requests, failures) = logins(&s);
    let Some((attempt, tokens, answers, timeline)) = provoked else {
        panic!(
            "{name}: no same-second revoked token in {ATTEMPTS} password changes \
             (logins per attempt, refused: {per_attempt:?})"
        );
    };
    report(
        name,
        &format!(
            "a token issued 201 after the change and refused at attempt {attempt} ({tokens} \
             token(s)); logins per attempt (total, refused) {per_attempt:?}; {sent} \
             points delivered; logins {requests} ({failures} refused); {} requests answered 401; \
             answers per new token, in order: {answers}; {timeline}",
            bf.answered(401)
        ),
    );
}
