//! RMCP / IPMI LAN wire formats (IPMI v2.0 sections 13.6-13.8, 13.17-13.23),
//! pure encode/decode. Decoders take any bytes and return an error for
//! anything malformed; they never panic.
//!
//! ```text
//!  RMCP header   06 00 ff 07
//!  v1.5 session  authtype(0) seq(4) sid(4) len(1) msg
//!  v2.0 session  authtype(6) payload-type(1: enc|auth|type) sid(4 LE) seq(4 LE) len(2 LE)
//!                payload [pad(ff..) padlen(1) next-header(07) authcode]
//!  IPMI message  rsAddr netFn/LUN chk1 rqAddr rqSeq/LUN cmd data.. chk2
//! ```

use std::fmt;

pub const RMCP_VERSION: u8 = 0x06;
pub const RMCP_NO_ACK: u8 = 0xff;
pub const RMCP_CLASS_IPMI: u8 = 0x07;
pub const AUTH_TYPE_NONE: u8 = 0x00;
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
pub const BMC_ADDR: u8 = 0x20;
pub const CONSOLE_ADDR: u8 = 0x81;

/// RMCP+ payload types.
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

/// A datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the format needs.
    #[error("truncated packet: {0}")]
    Truncated(&'static str),
    /// Not RMCP/IPMI at all.
    #[error("not an RMCP IPMI packet ({0})")]
    NotIpmi(&'static str),
    /// A field has a value the format does not allow.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// A checksum or auth code did not match.
    #[error("bad checksum in {0}")]
    Checksum(&'static str),
}

type R<T> = Result<T, PacketError>;

fn u32le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Two's complement checksum: the bytes plus it sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
}

/// A decoded datagram. `payload` is still encrypted if `encrypted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// IPMI v1.5 session wrapper (we only accept auth type none).
    V15 {
        session_seq: u32,
        session_id: u32,
        payload: &'a [u8],
    },
    /// IPMI v2.0 / RMCP+ session wrapper.
    V20 {
        payload_type: u8,
        encrypted: bool,
        authenticated: bool,
        session_id: u32,
        session_seq: u32,
        payload: &'a [u8],
        /// Bytes covered by the auth code (session header .. next header).
        signed: &'a [u8],
        auth_code: &'a [u8],
    },
}

/// Decode a datagram. `auth_code_len` is the integrity code length of the
/// session the packet claims to belong to (0 before a session exists).
pub fn decode(d: &[u8], auth_code_len: usize) -> R<Datagram<'_>> {
    if d.len() < 4 {
        return Err(PacketError::Truncated("RMCP header"));
    }
    if d[0] != RMCP_VERSION || d[3] & 0x1f != RMCP_CLASS_IPMI {
        return Err(PacketError::NotIpmi("RMCP version/class"));
    }
    let s = &d[4..];
    let Some(&auth_type) = s.first() else {
        return Err(PacketError::Truncated("session header"));
    };
    match auth_type & 0x0f {
        AUTH_TYPE_NONE => {
            if s.len() < 10 {
                return Err(PacketError::Truncated("v1.5 session header"));
            }
            let len = s[9] as usize;
            let payload = s
                .get(10..10 + len)
                .ok_or(PacketError::Truncated("v1.5 payload"))?;
            Ok(Datagram::V15 {
                session_seq: u32le(&s[1..5]),
                session_id: u32le(&s[5..9]),
                payload,
            })
        }
        AUTH_TYPE_RMCP_PLUS => {
            if s.len() < 12 {
                return Err(PacketError::Truncated("v2.0 session header"));
            }
            let pt = s[1];
            let payload_type = pt & 0x3f;
            if payload_type == 0x02 {
                return Err(PacketError::Malformed("OEM payloads are not supported"));
            }
            let encrypted = pt & 0x80 != 0;
            let authenticated = pt & 0x40 != 0;
            let session_id = u32le(&s[2..6]);
            let session_seq = u32le(&s[6..10]);
            let len = u16::from_le_bytes([s[10], s[11]]) as usize;
            let payload = s
                .get(12..12 + len)
                .ok_or(PacketError::Truncated("v2.0 payload"))?;
            if !authenticated {
                return Ok(Datagram::V20 {
                    payload_type,
                    encrypted,
                    authenticated,
                    session_id,
                    session_seq,
                    payload,
                    signed: &[],
                    auth_code: &[],
                });
            }
            if auth_code_len == 0 {
                return Err(PacketError::Malformed(
                    "authenticated packet outside a session with integrity",
                ));
            }
            // Trailer: pad (0-3 x ff), pad length, next header (07), auth code.
            let end = s.len();
            if end < 12 + len + 2 + auth_code_len {
                return Err(PacketError::Truncated("integrity trailer"));
            }
            let code_at = end - auth_code_len;
            let next_header = s[code_at - 1];
            let pad_len = s[code_at - 2] as usize;
            if next_header != 0x07 || pad_len > 3 || 12 + len + pad_len + 2 != code_at {
                return Err(PacketError::Malformed("integrity pad / next header"));
            }
            Ok(Datagram::V20 {
                payload_type,
                encrypted,
                authenticated,
                session_id,
                session_seq,
                payload,
                signed: &s[..code_at],
                auth_code: &s[code_at..],
            })
        }
        _ => Err(PacketError::NotIpmi("unsupported authentication type")),
    }
}

/// Encode a v1.5 session-less packet (auth type none).
pub fn encode_v15(session_seq: u32, session_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut v = vec![
        RMCP_VERSION,
        0,
        RMCP_NO_ACK,
        RMCP_CLASS_IPMI,
        AUTH_TYPE_NONE,
    ];
    v.extend_from_slice(&session_seq.to_le_bytes());
    v.extend_from_slice(&session_id.to_le_bytes());
    v.push(msg.len() as u8);
    v.extend_from_slice(msg);
    v
}

/// Computes the auth code over the signed bytes of a packet.
pub type Signer<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// Encode a v2.0 packet. `payload` must already be encrypted when
/// `encrypted`; `sign` computes the auth code over the signed bytes when the
/// packet is authenticated.
pub fn encode_v20(
    payload_type: u8,
    encrypted: bool,
    session_id: u32,
    session_seq: u32,
    payload: &[u8],
    sign: Option<Signer<'_>>,
) -> Vec<u8> {
    let mut v = vec![RMCP_VERSION, 0, RMCP_NO_ACK, RMCP_CLASS_IPMI];
    let start = v.len();
    let mut pt = payload_type & 0x3f;
    if encrypted {
        pt |= 0x80;
    }
    if sign.is_some() {
        pt |= 0x40;
    }
    v.push(AUTH_TYPE_RMCP_PLUS);
    v.push(pt);
    v.extend_from_slice(&session_id.to_le_bytes());
    v.extend_from_slice(&session_seq.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    if let Some(sign) = sign {
        // Pad so that session header .. next header is a multiple of 4.
        let pad = (4 - (v.len() - start + 2) % 4) % 4;
        v.extend(std::iter::repeat_n(0xff, pad));
        v.push(pad as u8);
        v.push(0x07);
        let code = sign(&v[start..]);
        v.extend_from_slice(&code);
    }
    v
}

/// An IPMI request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiRequest {
    pub netfn: u8,
    pub cmd: u8,
    /// 6-bit request sequence number.
    pub rq_seq: u8,
    pub data: Vec<u8>,
}

/// An IPMI response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiResponse {
    /// Response netfn (request netfn + 1).
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
}

impl fmt::Display for IpmiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "netfn {:#04x} cmd {:#04x} cc {:#04x}",
            self.netfn, self.cmd, self.completion
        )
    }
}

impl IpmiRequest {
    pub fn encode(&self) -> Vec<u8> {
        let h = [BMC_ADDR, self.netfn << 2];
        let mut v = vec![h[0], h[1], checksum(&h)];
        let body_start = v.len();
        v.push(CONSOLE_ADDR);
        v.push((self.rq_seq & 0x3f) << 2);
        v.push(self.cmd);
        v.extend_from_slice(&self.data);
        let c = checksum(&v[body_start..]);
        v.push(c);
        v
    }

    pub fn decode(b: &[u8]) -> R<IpmiRequest> {
        if b.len() < 7 {
            return Err(PacketError::Truncated("IPMI request"));
        }
        if !sums_to_zero(&b[..3]) {
            return Err(PacketError::Checksum("IPMI request header"));
        }
        if !sums_to_zero(&b[3..]) {
            return Err(PacketError::Checksum("IPMI request body"));
        }
        Ok(IpmiRequest {
            netfn: b[1] >> 2,
            cmd: b[5],
            rq_seq: b[4] >> 2,
            data: b[6..b.len() - 1].to_vec(),
        })
    }
}

impl IpmiResponse {
    pub fn encode(&self) -> Vec<u8> {
        let h = [CONSOLE_ADDR, self.netfn << 2];
        let mut v = vec![h[0], h[1], checksum(&h)];
        let body_start = v.len();
        v.push(BMC_ADDR);
        v.push((self.rq_seq & 0x3f) << 2);
        v.push(self.cmd);
        v.push(self.completion);
        v.extend_from_slice(&self.data);
        let c = checksum(&v[body_start..]);
        v.push(c);
        v
    }

    pub fn decode(b: &[u8]) -> R<IpmiResponse> {
        if b.len() < 8 {
            return Err(PacketError::Truncated("IPMI response"));
        }
        if !sums_to_zero(&b[..3]) {
            return Err(PacketError::Checksum("IPMI response header"));
        }
        if !sums_to_zero(&b[3..]) {
            return Err(PacketError::Checksum("IPMI response body"));
        }
        Ok(IpmiResponse {
            netfn: b[1] >> 2,
            cmd: b[5],
            rq_seq: b[4] >> 2,
            completion: b[6],
            data: b[7..b.len() - 1].to_vec(),
        })
    }
}

/// RMCP+ Open Session Request (payload 0x10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// Requested maximum privilege (0 = highest the proposed algorithms allow).
    pub max_privilege: u8,
    pub console_sid: u32,
    pub auth: u8,
    pub integrity: u8,
    pub conf: u8,
}

fn algorithm_record(kind: u8, alg: u8) -> [u8; 8] {
    [kind, 0, 0, 0x08, alg, 0, 0, 0]
}

impl OpenSessionRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.max_privilege, 0, 0];
        v.extend_from_slice(&self.console_sid.to_le_bytes());
        v.extend_from_slice(&algorithm_record(0, self.auth));
        v.extend_from_slice(&algorithm_record(1, self.integrity));
        v.extend_from_slice(&algorithm_record(2, self.conf));
        v
    }
    pub fn decode(b: &[u8]) -> R<OpenSessionRequest> {
        if b.len() < 32 {
            return Err(PacketError::Truncated("Open Session Request"));
        }
        Ok(OpenSessionRequest {
            tag: b[0],
            max_privilege: b[1] & 0x0f,
            console_sid: u32le(&b[4..8]),
            auth: b[12] & 0x3f,
            integrity: b[20] & 0x3f,
            conf: b[28] & 0x3f,
        })
    }
}

/// RMCP+ Open Session Response (payload 0x11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    /// RMCP+ status code (0 = ok).
    pub status: u8,
    pub max_privilege: u8,
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub auth: u8,
    pub integrity: u8,
    pub conf: u8,
}

impl OpenSessionResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, self.max_privilege, 0];
        v.extend_from_slice(&self.console_sid.to_le_bytes());
        if self.status != 0 {
            return v;
        }
        v.extend_from_slice(&self.bmc_sid.to_le_bytes());
        v.extend_from_slice(&algorithm_record(0, self.auth));
        v.extend_from_slice(&algorithm_record(1, self.integrity));
        v.extend_from_slice(&algorithm_record(2, self.conf));
        v
    }
    pub fn decode(b: &[u8]) -> R<OpenSessionResponse> {
        if b.len() < 8 {
            return Err(PacketError::Truncated("Open Session Response"));
        }
        let mut r = OpenSessionResponse {
            tag: b[0],
            status: b[1],
            max_privilege: b[2] & 0x0f,
            console_sid: u32le(&b[4..8]),
            bmc_sid: 0,
            auth: 0,
            integrity: 0,
            conf: 0,
        };
        if r.status != 0 {
            return Ok(r);
        }
        if b.len() < 36 {
            return Err(PacketError::Truncated("Open Session Response algorithms"));
        }
        r.bmc_sid = u32le(&b[8..12]);
        r.auth = b[16] & 0x3f;
        r.integrity = b[24] & 0x3f;
        r.conf = b[32] & 0x3f;
        Ok(r)
    }
}

/// RAKP Message 1 (payload 0x12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub bmc_sid: u32,
    pub console_rand: [u8; 16],
    /// Privilege level | 0x10 for name-only lookup.
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, 0, 0, 0];
        v.extend_from_slice(&self.bmc_sid.to_le_bytes());
        v.extend_from_slice(&self.console_rand);
        v.extend_from_slice(&[self.role, 0, 0, self.username.len() as u8]);
        v.extend_from_slice(&self.username);
        v
    }
    pub fn decode(b: &[u8]) -> R<Rakp1> {
        if b.len() < 28 {
            return Err(PacketError::Truncated("RAKP 1"));
        }
        let ulen = b[27] as usize;
        if ulen > 16 {
            return Err(PacketError::Malformed(
                "RAKP 1 user name longer than 16 bytes",
            ));
        }
        let username = b
            .get(28..28 + ulen)
            .ok_or(PacketError::Truncated("RAKP 1 user name"))?
            .to_vec();
        let mut console_rand = [0u8; 16];
        console_rand.copy_from_slice(&b[8..24]);
        Ok(Rakp1 {
            tag: b[0],
            bmc_sid: u32le(&b[4..8]),
            console_rand,
            role: b[24],
            username,
        })
    }
}

/// RAKP Message 2 (payload 0x13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub bmc_rand: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend_from_slice(&self.console_sid.to_le_bytes());
        if self.status != 0 {
            return v;
        }
        v.extend_from_slice(&self.bmc_rand);
        v.extend_from_slice(&self.bmc_guid);
        v.extend_from_slice(&self.auth_code);
        v
    }
    pub fn decode(b: &[u8]) -> R<Rakp2> {
        if b.len() < 8 {
            return Err(PacketError::Truncated("RAKP 2"));
        }
        let status = b[1];
        let console_sid = u32le(&b[4..8]);
        if status != 0 {
            return Ok(Rakp2 {
                tag: b[0],
                status,
                console_sid,
                bmc_rand: [0; 16],
                bmc_guid: [0; 16],
                auth_code: Vec::new(),
            });
        }
        if b.len() < 40 {
            return Err(PacketError::Truncated("RAKP 2 random/GUID"));
        }
        let mut bmc_rand = [0u8; 16];
        bmc_rand.copy_from_slice(&b[8..24]);
        let mut bmc_guid = [0u8; 16];
        bmc_guid.copy_from_slice(&b[24..40]);
        Ok(Rakp2 {
            tag: b[0],
            status,
            console_sid,
            bmc_rand,
            bmc_guid,
            auth_code: b[40..].to_vec(),
        })
    }
}

/// RAKP Message 3 (payload 0x14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp3 {
    pub tag: u8,
    pub status: u8,
    pub bmc_sid: u32,
    pub auth_code: Vec<u8>,
}

impl Rakp3 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend_from_slice(&self.bmc_sid.to_le_bytes());
        v.extend_from_slice(&self.auth_code);
        v
    }
    pub fn decode(b: &[u8]) -> R<Rakp3> {
        if b.len() < 8 {
            return Err(PacketError::Truncated("RAKP 3"));
        }
        Ok(Rakp3 {
            tag: b[0],
            status: b[1],
            bmc_sid: u32le(&b[4..8]),
            auth_code: b[8..].to_vec(),
        })
    }
}

/// RAKP Message 4 (payload 0x15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub icv: Vec<u8>,
}

impl Rakp4 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend_from_slice(&self.console_sid.to_le_bytes());
        v.extend_from_slice(&self.icv);
        v
    }
    pub fn decode(b: &[u8]) -> R<Rakp4> {
        if b.len() < 8 {
            return Err(PacketError::Truncated("RAKP 4"));
        }
        Ok(Rakp4 {
            tag: b[0],
            status: b[1],
            console_sid: u32le(&b[4..8]),
            icv: b[8..].to_vec(),
        })
    }
}

/// RMCP+ status codes (IPMI v2.0 table 13-15), for messages.
pub fn rmcp_status_text(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown RMCP+ status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_round_trip() {
        let r = IpmiRequest {
            netfn: 0x00,
            cmd: 0x02,
            rq_seq: 5,
            data: vec![0x00],
        };
        assert_eq!(IpmiRequest::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn v20_signed_round_trip() {
        let sign = |b: &[u8]| {
            crate::ipmi::crypto::integrity_code(
                crate::ipmi::crypto::IntegrityAlg::HmacSha1_96,
                b"k1",
                b,
            )
        };
        for n in 0..9 {
            let payload = vec![0xab; n];
            let p = encode_v20(0, true, 0x1234, 7, &payload, Some(&sign));
            let Datagram::V20 {
                payload: got,
                signed,
                auth_code,
                session_seq,
                ..
            } = decode(&p, 12).unwrap()
            else {
                panic!()
            };
            assert_eq!(got, &payload[..]);
            assert_eq!(session_seq, 7);
            assert_eq!(signed.len() % 4, 0);
            assert_eq!(sign(signed), auth_code);
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), code in 0usize..20) {
            let _ = decode(&bytes, code);
            let _ = IpmiRequest::decode(&bytes);
            let _ = IpmiResponse::decode(&bytes);
            let _ = OpenSessionRequest::decode(&bytes);
            let _ = OpenSessionResponse::decode(&bytes);
            let _ = Rakp1::decode(&bytes);
            let _ = Rakp2::decode(&bytes);
            let _ = Rakp3::decode(&bytes);
            let _ = Rakp4::decode(&bytes);
        }

        #[test]
        fn response_round_trip(netfn in 0u8..64, cmd: u8, seq in 0u8..64, cc: u8, data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let r = IpmiResponse { netfn, cmd, rq_seq: seq, completion: cc, data };
            prop_assert_eq!(IpmiResponse::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn rakp_round_trips(tag: u8, sid: u32, rand: [u8; 16], role in 0u8..0x20, name in proptest::collection::vec(any::<u8>(), 0..17)) {
            let m = Rakp1 { tag, bmc_sid: sid, console_rand: rand, role, username: name };
            prop_assert_eq!(Rakp1::decode(&m.encode()).unwrap(), m);
            let o = OpenSessionRequest { tag, max_privilege: role & 0x0f, console_sid: sid, auth: 1, integrity: 1, conf: 1 };
            prop_assert_eq!(OpenSessionRequest::decode(&o.encode()).unwrap(), o);
            let r2 = Rakp2 { tag, status: 0, console_sid: sid, bmc_rand: rand, bmc_guid: rand, auth_code: vec![1; 20] };
            prop_assert_eq!(Rakp2::decode(&r2.encode()).unwrap(), r2);
        }
    }
}
