//! Any datagram a BMC (or anyone on the network) sends must decode to a
//! value or an error, never a panic: every RMCP/IPMI decoder, the AES
//! unwrapping and the cipher-suite record parser.
#![no_main]

use ironfence::ipmi::{commands, crypto, packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for code_len in [0usize, 12, 16] {
        if let Ok(packet::Datagram::V20 { payload, signed, .. }) = packet::decode(data, code_len) {
            let _ = crypto::integrity_code(crypto::IntegrityAlg::HmacSha1_96, b"k1", signed);
            let _ = crypto::aes_decrypt(&[7u8; 20], payload);
            let _ = packet::IpmiResponse::decode(payload);
        }
    }
    let _ = packet::IpmiRequest::decode(data);
    let _ = packet::IpmiResponse::decode(data);
    let _ = packet::OpenSessionRequest::decode(data);
    let _ = packet::OpenSessionResponse::decode(data);
    let _ = packet::Rakp1::decode(data);
    let _ = packet::Rakp2::decode(data);
    let _ = packet::Rakp3::decode(data);
    let _ = packet::Rakp4::decode(data);
    let _ = crypto::aes_decrypt(&[1u8; 16], data);
    let _ = commands::suite_ids(data);
});
