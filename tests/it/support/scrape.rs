//! `/metrics` as a test reads it: one GET of the admin port (in the format an Accept header
//! asks for), and the value of one unlabelled series in the answer.

use std::net::SocketAddr;

/// The answer of `GET /metrics` on `admin`, with `accept` as the Accept header if given.
pub async fn metrics_text(admin: SocketAddr, accept: Option<&str>) -> String {
    let mut req = reqwest::Client::new().get(format!("http://{admin}/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

/// The value of the unlabelled series `name` in `text`, if it is there.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}
