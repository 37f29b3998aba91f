//! Whatever is on a shared disk (another cluster's data, a half-written
//! sector, garbage) must decode to an sbd structure or an error, never a
//! panic: header, slot and mailbox decoders, at both sector sizes.
#![no_main]

use ironfence::sbd::format::{Header, Mailbox, Slot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    let _ = Slot::decode(data);
    let _ = Mailbox::decode(data);
    if let Ok(h) = Header::decode(data) {
        let _ = h.uuid_string();
        let _ = Header::decode(&h.encode());
    }
    if let Ok(s) = Slot::decode(data) {
        let _ = s.is("node-1");
        let _ = s.encode(512);
    }
    if let Ok(m) = Mailbox::decode(data) {
        let _ = m.encode(4096);
        let _ = m.cmd.name();
    }
});
