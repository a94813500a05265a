//! The names the ledger counts by: why a datapoint was dropped, what input was refused as a
//! whole, which listener a connection belongs to. Each label is a metric label and a `/status`
//! key, so renaming one is an interface change.

use crate::config::settings::Protocol;

/// Why a datapoint was dropped. Each has its own counter; the label is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The datapoint itself could not be decoded (bad shape, bad number, bad name).
    DecodeError,
    /// The value was NaN or infinite: Blueflood would reject the whole request.
    Nan,
    /// Outside Blueflood's accepted time window.
    OutOfWindow,
    /// The buffer was full (policy `drop_newest`, or UDP under `block`).
    BufferFull,
    /// Blueflood rejected the point (207 list, or isolated by bisecting a 400).
    RejectedByBlueflood,
    /// One point alone encodes larger than the request limit.
    TooLarge,
    /// Still undelivered when the shutdown deadline passed (and not spooled).
    ShutdownTimeout,
    /// In the oldest spool segment, deleted to make room (`spool_full_policy = drop_oldest`).
    SpoolFull,
    /// In a spool segment found corrupt after it was written (checksum failure while reading).
    SpoolCorrupt,
    /// In a spool segment that could no longer be opened or read back (deleted while running,
    /// made unreadable, an I/O error).
    SpoolLost,
}

impl DropReason {
    pub const ALL: [DropReason; 10] = [
        DropReason::DecodeError,
        DropReason::Nan,
        DropReason::OutOfWindow,
        DropReason::BufferFull,
        DropReason::RejectedByBlueflood,
        DropReason::TooLarge,
        DropReason::ShutdownTimeout,
        DropReason::SpoolFull,
        DropReason::SpoolCorrupt,
        DropReason::SpoolLost,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::DecodeError => "decode_error",
            DropReason::Nan => "nan",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::BufferFull => "buffer_full",
            DropReason::RejectedByBlueflood => "rejected_by_blueflood",
            DropReason::TooLarge => "too_large",
            DropReason::ShutdownTimeout => "shutdown_timeout",
            DropReason::SpoolFull => "spool_full",
            DropReason::SpoolCorrupt => "spool_corrupt",
            DropReason::SpoolLost => "spool_lost",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Input that was refused as a whole before any datapoint could be read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadInput {
    /// A pickle frame that is not a list of datapoints, or uses a forbidden opcode.
    PickleFrame,
    /// A length header above `max_frame_bytes`; the connection is closed.
    FrameTooLarge,
    /// A zero-length frame.
    EmptyFrame,
    /// A line longer than `max_line_bytes`.
    LineTooLong,
    /// A connection closed in the middle of a frame.
    TruncatedFrame,
}

impl BadInput {
    pub const ALL: [BadInput; 5] = [
        BadInput::PickleFrame,
        BadInput::FrameTooLarge,
        BadInput::EmptyFrame,
        BadInput::LineTooLong,
        BadInput::TruncatedFrame,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BadInput::PickleFrame => "pickle_frame",
            BadInput::FrameTooLarge => "frame_too_large",
            BadInput::EmptyFrame => "empty_frame",
            BadInput::LineTooLong => "line_too_long",
            BadInput::TruncatedFrame => "truncated_frame",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// A listening socket whose `accept` can fail (mostly for want of file descriptors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    Pickle,
    LineTcp,
    Admin,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Listener::Pickle, Listener::LineTcp, Listener::Admin];

    /// The carbon TCP listener of `protocol` (UDP has no accept).
    pub fn carbon(protocol: Protocol) -> Listener {
        match protocol {
            Protocol::Pickle => Listener::Pickle,
            Protocol::LineTcp | Protocol::LineUdp => Listener::LineTcp,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Listener::Pickle => "pickle",
            Listener::LineTcp => "line_tcp",
            Listener::Admin => "admin",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}
