//! Carbon pickle protocol payload decoder (placeholder until the decoder lands).
use super::{PointError, RawPoint};

pub struct PickleLimits {
    pub max_depth: usize,
    pub max_items: usize,
    pub max_memo: usize,
    pub max_name_bytes: usize,
}

impl Default for PickleLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_items: 1_000_000,
            max_memo: 100_000,
            max_name_bytes: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FrameError {
    #[error("unsupported")]
    Unsupported,
}

impl FrameError {
    pub fn reason(&self) -> &'static str {
        "unsupported"
    }
}

pub fn decode_frame<'a>(
    _payload: &'a [u8],
    _limits: &PickleLimits,
    _out: &mut Vec<Result<RawPoint<'a>, PointError>>,
) -> Result<(), FrameError> {
    Err(FrameError::Unsupported)
}
