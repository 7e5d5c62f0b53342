//! How a fuzz input is cut into steps: a record is one control byte, a
//! 16-bit big-endian length and that many bytes (fewer at the end of the
//! input). The same framing is written by `seeds` and read by every
//! target that replays a sequence.

// Each binary includes this file and uses half of it: the targets read
// records, the seeds write them.
#![allow(dead_code)]

/// The records of an input, in order.
pub fn records(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&ctrl, rest) = input.split_first()?;
        let len = match rest {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return None,
        };
        let body = &rest[2..];
        let take = len.min(body.len());
        let (record, after) = body.split_at(take);
        input = after;
        Some((ctrl, record))
    })
}

/// Frames one record (for the seeds).
pub fn record(ctrl: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("a record fits 64 KiB");
    let mut out = vec![ctrl];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A scratch folder of the target's own, emptied at start: memory-backed
/// where there is one (some targets write a file per input). A fuzzer is
/// killed rather than stopped, so a fixed name leaves at most one behind.
pub fn scratch(target: &str) -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("pxedeck-fuzz-{target}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}
