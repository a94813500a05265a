//! Cutting points into request bodies: the one loop that offers points to a
//! [`BodyBuilder`] and hands back each body as it fills, used by the flusher (live points)
//! and by replay (records read back from the spool) alike, so both cut exactly the same way.

use super::blueflood::{BodyBuilder, Offer};
use crate::model::Datapoint;

/// One request's worth: the points and their encoded JSON array.
pub(super) struct Body {
    pub(super) points: Vec<Datapoint>,
    pub(super) json: Vec<u8>,
}

/// What pushing one point did.
#[must_use]
pub(super) struct Cut {
    /// The body being filled had no room for the point: here it is, finished.
    pub(super) completed: Option<Body>,
    /// The point joined the body being filled (the next one, when one was completed).
    /// `false`: the point alone encodes larger than a request may be and can never be sent;
    /// the caller counts it dropped.
    pub(super) added: bool,
}

/// The body being filled.
pub(super) struct BodyCutter {
    builder: BodyBuilder,
    points: Vec<Datapoint>,
    max_bytes: usize,
    ttl_seconds: u32,
}

impl BodyCutter {
    pub(super) fn new(max_bytes: usize, ttl_seconds: u32) -> Self {
        Self {
            builder: BodyBuilder::new(max_bytes, ttl_seconds),
            points: Vec::new(),
            max_bytes,
            ttl_seconds,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    #[inline]
    pub(super) fn push(&mut self, point: Datapoint) -> Cut {
        let completed = match self.builder.offer(&point) {
            Offer::Added => None,
            Offer::TooLarge => {
                return Cut {
                    completed: None,
                    added: false,
                };
            }
            // A builder with points says `Full` even for a point too large on its own: the
            // empty one it is replaced with tells which.
            Offer::Full => {
                let full = self.take_body();
                if self.builder.offer(&point) != Offer::Added {
                    return Cut {
                        completed: Some(full),
                        added: false,
                    };
                }
                Some(full)
            }
        };
        self.points.push(point);
        Cut {
            completed,
            added: true,
        }
    }

    /// The body filled so far (`None` when empty); the cutter starts a new one.
    pub(super) fn take(&mut self) -> Option<Body> {
        (!self.points.is_empty()).then(|| self.take_body())
    }

    /// The points of the body filled so far, unencoded (what a deadline catches).
    pub(super) fn take_points(&mut self) -> Vec<Datapoint> {
        self.builder = BodyBuilder::new(self.max_bytes, self.ttl_seconds);
        std::mem::take(&mut self.points)
    }

    fn take_body(&mut self) -> Body {
        let builder = std::mem::replace(
            &mut self.builder,
            BodyBuilder::new(self.max_bytes, self.ttl_seconds),
        );
        Body {
            points: std::mem::take(&mut self.points),
            json: builder.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::blueflood::encode_body;

    fn pt(name: &str, ts: i64) -> Datapoint {
        Datapoint::new(name, ts, 1.0)
    }

    #[test]
    fn bodies_are_cut_when_full_and_each_encodes_its_own_points() {
        let mut c = BodyCutter::new(200, 60);
        let mut bodies = Vec::new();
        for i in 0..10 {
            let cut = c.push(pt(&format!("a.b.{i}"), i));
            assert!(cut.added, "small point too large");
            bodies.extend(cut.completed);
        }
        bodies.extend(c.take());
        assert!(bodies.len() > 1, "200 bytes hold fewer than 10 points");
        assert!(c.is_empty() && c.take().is_none());
        let mut seen = 0;
        for b in &bodies {
            assert!(b.json.len() < 200);
            assert_eq!(b.json, encode_body(&b.points, 60));
            for p in &b.points {
                assert_eq!(p.timestamp_ms, seen);
                seen += 1;
            }
        }
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_point_larger_than_a_body_is_refused_and_the_body_kept() {
        let mut c = BodyCutter::new(120, 60);
        let alone = c.push(pt(&"x".repeat(300), 1));
        assert!(!alone.added && alone.completed.is_none());
        assert!(c.push(pt("a", 2)).added);
        // With a point in the body, the builder says "full"; the cutter tells it apart.
        let behind = c.push(pt(&"x".repeat(300), 3));
        assert!(!behind.added);
        let body = behind.completed.expect("the body before it is finished");
        assert_eq!(body.points.len(), 1);
        assert!(c.is_empty());
        assert!(c.push(pt("b", 4)).added);
        assert_eq!(c.take_points().len(), 1);
        assert!(c.is_empty());
    }
}
