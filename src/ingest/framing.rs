//! How a TCP connection's byte stream is cut into pickle frames or lines, and what a
//! connection's read buffer may keep between reads.
//!
//! Pickle frames are cut here rather than by `tokio_util`'s `LengthDelimitedCodec`: that codec
//! reserves the whole announced length as soon as it sees a header, so 4 bytes announcing
//! `max_frame_bytes` and then silence made every connection allocate a full frame. Here the
//! buffer grows only with the bytes that arrive, and those are what the connection is charged
//! against the shared `partial_frame_bytes` budget.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{AnyDelimiterCodec, Decoder};

/// The bytes of a pickle frame's big-endian length header.
const HEADER: usize = 4;
/// Bytes read per syscall at the least.
pub const READ_CHUNK: usize = 64 * 1024;
/// A read buffer that grew past this (for a large frame) and now holds at most half of its
/// high-water mark is replaced by one sized to what it holds: a connection that once received
/// a large frame does not keep its allocation while idle. Below it, nothing is reallocated:
/// ordinary traffic (frames of tens of KiB) never pays for a copy.
const SHRINK_ABOVE: usize = 2 * READ_CHUNK;

pub enum Framing {
    Pickle { max_frame_bytes: usize },
    Line(AnyDelimiterCodec),
}

pub enum Frame {
    Pickle(BytesMut),
    Line(bytes::Bytes),
}

pub enum FrameFault {
    /// A length header above `max_frame_bytes`: the stream can no longer be trusted.
    FrameTooLarge,
    /// The stream ended inside a frame.
    Truncated,
    LineTooLong,
}

impl Framing {
    pub fn pickle(max_frame_bytes: usize) -> Self {
        Framing::Pickle { max_frame_bytes }
    }

    pub fn line(max_line_bytes: usize) -> Self {
        Framing::Line(AnyDelimiterCodec::new_with_max_length(
            vec![b'\n'],
            vec![b'\n'],
            max_line_bytes,
        ))
    }

    /// The next complete frame or line in `buf`, if any; at end of stream (`eof`) what is
    /// left is a last line, or a truncated frame.
    pub fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Frame>, FrameFault> {
        match self {
            Framing::Pickle { max_frame_bytes } => match pickle_frame(buf, *max_frame_bytes)? {
                Some(f) => Ok(Some(Frame::Pickle(f))),
                None if eof && !buf.is_empty() => {
                    buf.clear();
                    Err(FrameFault::Truncated)
                }
                None => Ok(None),
            },
            Framing::Line(c) => {
                let next = if eof {
                    c.decode_eof(buf)
                } else {
                    c.decode(buf)
                };
                next.map(|l| l.map(Frame::Line)).map_err(|e| match e {
                    tokio_util::codec::AnyDelimiterCodecError::MaxChunkLengthExceeded => {
                        FrameFault::LineTooLong
                    }
                    // The codec reads no I/O itself; at end of stream a leftover is a last
                    // line, so an error here can only mean a stream cut short.
                    tokio_util::codec::AnyDelimiterCodecError::Io(_) => FrameFault::Truncated,
                })
            }
        }
    }
}

/// Cuts one frame off the front of `buf` once all of it has arrived; never reserves room for
/// bytes not yet received.
fn pickle_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<BytesMut>, FrameFault> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let mut len = [0u8; HEADER];
    len.copy_from_slice(header);
    let Ok(len) = usize::try_from(u32::from_be_bytes(len)) else {
        return Err(FrameFault::FrameTooLarge);
    };
    if len > max_frame_bytes {
        return Err(FrameFault::FrameTooLarge);
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    buf.advance(HEADER);
    Ok(Some(buf.split_to(len)))
}

/// A connection's read buffer and the most it has held since it was allocated.
pub struct ReadBuf {
    pub buf: BytesMut,
    high_water: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            high_water: 0,
        }
    }
}

impl ReadBuf {
    /// After a read: remembers how much the buffer held.
    pub fn filled(&mut self) {
        self.high_water = self.high_water.max(self.buf.len());
    }

    /// Before a read: room for at least one chunk, in an allocation kept proportionate to what
    /// the buffer holds (see `SHRINK_ABOVE`).
    pub fn make_room(&mut self) {
        let len = self.buf.len();
        if self.high_water > SHRINK_ABOVE && len <= self.high_water / 2 {
            let mut fresh = BytesMut::with_capacity(len + READ_CHUNK);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
            self.high_water = len;
        }
        self.buf.reserve(READ_CHUNK);
    }

    /// Bytes held of input not yet complete.
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_alone_reserves_nothing_and_frames_are_cut_when_complete() {
        let mut f = Framing::pickle(1 << 20);
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&(1u32 << 20).to_be_bytes());
        assert!(matches!(f.next(&mut buf, false), Ok(None)));
        assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c', 0, 0]);
        match f.next(&mut buf, false) {
            Ok(Some(Frame::Pickle(frame))) => assert_eq!(&frame[..], b"abc"),
            _ => panic!("a frame"),
        }
        assert!(matches!(f.next(&mut buf, false), Ok(None)));
        assert!(matches!(f.next(&mut buf, true), Err(FrameFault::Truncated)));
        assert!(buf.is_empty());
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            f.next(&mut buf, false),
            Err(FrameFault::FrameTooLarge)
        ));
    }

    #[test]
    fn a_buffer_that_grew_for_a_large_frame_is_shrunk_once_it_holds_little() {
        let mut r = ReadBuf::default();
        r.buf.resize(1 << 20, 0);
        r.filled();
        r.buf.advance((1 << 20) - 10);
        r.make_room();
        assert_eq!(r.held(), 10);
        assert!(
            r.buf.capacity() <= 10 + 2 * READ_CHUNK,
            "{}",
            r.buf.capacity()
        );
        // Ordinary sizes are left alone.
        let mut r = ReadBuf::default();
        r.buf.resize(READ_CHUNK, 0);
        r.filled();
        r.buf.advance(READ_CHUNK - 1);
        r.make_room();
        assert_eq!(r.high_water, READ_CHUNK);
    }
}
