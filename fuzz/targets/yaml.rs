//! YAML: the parser that builds pxedeck's tree with file:line on every
//! node, then its JSON view and the deep merge that layers defaults,
//! profiles and machines. Record 0 and record 1 are two documents; the
//! second is merged over the first. A panic is a crash; an input that
//! takes too long shows up as a hang.

mod frames;

use pxedeck::yaml::{deep_merge, parse};

fn document(bytes: &[u8], file: u32) -> Option<pxedeck::yaml::Node> {
    parse(std::str::from_utf8(bytes).ok()?, file).ok()
}

fn run(input: &[u8]) {
    let mut records = frames::records(input);
    let Some(mut base) = records.next().and_then(|(_, b)| document(b, 0)) else {
        return;
    };
    let _ = base.to_json();
    if let Some(over) = records.next().and_then(|(_, b)| document(b, 1)) {
        deep_merge(&mut base, &over);
        let _ = base.to_json();
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}
