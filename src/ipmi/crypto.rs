//! RMCP+ cryptography (IPMI v2.0 section 13.28-13.32), pure functions over
//! RustCrypto primitives: cipher suites, the RAKP key-exchange auth codes,
//! session keys (SIK, K1, K2), packet integrity codes and AES-CBC-128 with
//! IPMI's confidentiality padding. Both the client and the simulator use it.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// RAKP authentication algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlg {
    None = 0,
    HmacSha1 = 1,
    HmacSha256 = 3,
}

/// Session integrity algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityAlg {
    None = 0,
    HmacSha1_96 = 1,
    HmacSha256_128 = 4,
}

/// Session confidentiality algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfAlg {
    None = 0,
    AesCbc128 = 1,
}

impl AuthAlg {
    pub fn from_u8(v: u8) -> Option<AuthAlg> {
        match v {
            0 => Some(AuthAlg::None),
            1 => Some(AuthAlg::HmacSha1),
            3 => Some(AuthAlg::HmacSha256),
            _ => None,
        }
    }
    /// Length of the RAKP 2/3 key exchange auth code (full HMAC).
    pub fn rakp_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacSha1 => 20,
            AuthAlg::HmacSha256 => 32,
        }
    }
    /// Length of the RAKP 4 integrity check value (truncated HMAC).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacSha1 => 12,
            AuthAlg::HmacSha256 => 16,
        }
    }
}

impl IntegrityAlg {
    pub fn from_u8(v: u8) -> Option<IntegrityAlg> {
        match v {
            0 => Some(IntegrityAlg::None),
            1 => Some(IntegrityAlg::HmacSha1_96),
            4 => Some(IntegrityAlg::HmacSha256_128),
            _ => None,
        }
    }
    /// Length of the AuthCode trailing an authenticated packet.
    pub fn code_len(self) -> usize {
        match self {
            IntegrityAlg::None => 0,
            IntegrityAlg::HmacSha1_96 => 12,
            IntegrityAlg::HmacSha256_128 => 16,
        }
    }
}

impl ConfAlg {
    pub fn from_u8(v: u8) -> Option<ConfAlg> {
        match v {
            0 => Some(ConfAlg::None),
            1 => Some(ConfAlg::AesCbc128),
            _ => None,
        }
    }
}

/// A cipher suite: one algorithm of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    pub id: u8,
    pub auth: AuthAlg,
    pub integrity: IntegrityAlg,
    pub conf: ConfAlg,
}

/// The suites we implement (IPMI v2.0 table 22-20, plus 15-17 from errata).
pub const SUITES: &[CipherSuite] = &[
    CipherSuite {
        id: 0,
        auth: AuthAlg::None,
        integrity: IntegrityAlg::None,
        conf: ConfAlg::None,
    },
    CipherSuite {
        id: 1,
        auth: AuthAlg::HmacSha1,
        integrity: IntegrityAlg::None,
        conf: ConfAlg::None,
    },
    CipherSuite {
        id: 2,
        auth: AuthAlg::HmacSha1,
        integrity: IntegrityAlg::HmacSha1_96,
        conf: ConfAlg::None,
    },
    CipherSuite {
        id: 3,
        auth: AuthAlg::HmacSha1,
        integrity: IntegrityAlg::HmacSha1_96,
        conf: ConfAlg::AesCbc128,
    },
    CipherSuite {
        id: 15,
        auth: AuthAlg::HmacSha256,
        integrity: IntegrityAlg::None,
        conf: ConfAlg::None,
    },
    CipherSuite {
        id: 16,
        auth: AuthAlg::HmacSha256,
        integrity: IntegrityAlg::HmacSha256_128,
        conf: ConfAlg::None,
    },
    CipherSuite {
        id: 17,
        auth: AuthAlg::HmacSha256,
        integrity: IntegrityAlg::HmacSha256_128,
        conf: ConfAlg::AesCbc128,
    },
];

impl CipherSuite {
    pub fn by_id(id: u8) -> Option<CipherSuite> {
        SUITES.iter().copied().find(|s| s.id == id)
    }
    /// The suite made of these algorithms, if we implement it.
    pub fn by_algorithms(auth: u8, integrity: u8, conf: u8) -> Option<CipherSuite> {
        SUITES.iter().copied().find(|s| {
            s.auth as u8 == auth && s.integrity as u8 == integrity && s.conf as u8 == conf
        })
    }
}

/// HMAC of the concatenation of `parts` (empty for `AuthAlg::None`).
pub fn hmac(alg: AuthAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match alg {
        AuthAlg::None => Vec::new(),
        AuthAlg::HmacSha1 => {
            // HMAC accepts keys of any length; this cannot fail.
            let Ok(mut m) = Hmac::<Sha1>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        AuthAlg::HmacSha256 => {
            let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// Everything the RAKP exchange mixes into its codes.
#[derive(Debug, Clone)]
pub struct RakpInputs<'a> {
    /// Remote console (client) session id.
    pub console_sid: u32,
    /// Managed system (BMC) session id.
    pub bmc_sid: u32,
    /// Remote console random number (RAKP 1).
    pub console_rand: [u8; 16],
    /// Managed system random number (RAKP 2).
    pub bmc_rand: [u8; 16],
    pub bmc_guid: [u8; 16],
    /// Requested role byte of RAKP 1 (privilege | name-only lookup bit).
    pub role: u8,
    pub username: &'a [u8],
}

/// RAKP 2 key exchange auth code: HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENm, UNAMEm).
pub fn rakp2_code(alg: AuthAlg, password: &[u8], r: &RakpInputs) -> Vec<u8> {
    hmac(
        alg,
        password,
        &[
            &r.console_sid.to_le_bytes(),
            &r.bmc_sid.to_le_bytes(),
            &r.console_rand,
            &r.bmc_rand,
            &r.bmc_guid,
            &[r.role, r.username.len() as u8],
            r.username,
        ],
    )
}

/// RAKP 3 key exchange auth code: HMAC_Kuid(Rc, SIDm, ROLEm, ULENm, UNAMEm).
pub fn rakp3_code(alg: AuthAlg, password: &[u8], r: &RakpInputs) -> Vec<u8> {
    hmac(
        alg,
        password,
        &[
            &r.bmc_rand,
            &r.console_sid.to_le_bytes(),
            &[r.role, r.username.len() as u8],
            r.username,
        ],
    )
}

/// Session keys.
#[derive(Clone)]
pub struct SessionKeys {
    pub sik: Vec<u8>,
    /// Integrity key.
    pub k1: Vec<u8>,
    /// Confidentiality key (first 16 bytes used by AES-CBC-128).
    pub k2: Vec<u8>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// SIK = HMAC_KG(Rm, Rc, ROLEm, ULENm, UNAMEm), KG = Kg if set, else the
/// password; K1/K2 = HMAC_SIK(20 bytes of 0x01 / 0x02).
pub fn session_keys(alg: AuthAlg, kg_or_password: &[u8], r: &RakpInputs) -> SessionKeys {
    let sik = hmac(
        alg,
        kg_or_password,
        &[
            &r.console_rand,
            &r.bmc_rand,
            &[r.role, r.username.len() as u8],
            r.username,
        ],
    );
    let k1 = hmac(alg, &sik, &[&[0x01; 20]]);
    let k2 = hmac(alg, &sik, &[&[0x02; 20]]);
    SessionKeys { sik, k1, k2 }
}

/// RAKP 4 integrity check value: HMAC_SIK(Rm, SIDc, GUIDc), truncated.
pub fn rakp4_icv(alg: AuthAlg, sik: &[u8], r: &RakpInputs) -> Vec<u8> {
    let mut v = hmac(
        alg,
        sik,
        &[&r.console_rand, &r.bmc_sid.to_le_bytes(), &r.bmc_guid],
    );
    v.truncate(alg.icv_len());
    v
}

/// AuthCode of an authenticated packet over `signed` (session header to next header).
pub fn integrity_code(alg: IntegrityAlg, k1: &[u8], signed: &[u8]) -> Vec<u8> {
    let mut v = match alg {
        IntegrityAlg::None => return Vec::new(),
        IntegrityAlg::HmacSha1_96 => hmac(AuthAlg::HmacSha1, k1, &[signed]),
        IntegrityAlg::HmacSha256_128 => hmac(AuthAlg::HmacSha256, k1, &[signed]),
    };
    v.truncate(alg.code_len());
    v
}

/// Constant-time comparison of auth codes.
pub fn codes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// AES-CBC-128 payload: IV, then the encrypted data followed by pad bytes
/// 1, 2, 3, ... and the pad length, to a multiple of 16.
pub fn aes_encrypt(k2: &[u8], iv: [u8; 16], plain: &[u8]) -> Option<Vec<u8>> {
    let key = k2.get(..16)?;
    let pad = (16 - (plain.len() + 1) % 16) % 16;
    let mut buf = Vec::with_capacity(plain.len() + pad + 1);
    buf.extend_from_slice(plain);
    buf.extend((1..=pad as u8).collect::<Vec<u8>>());
    buf.push(pad as u8);
    let n = buf.len();
    let enc = Aes128CbcEnc::new_from_slices(key, &iv).ok()?;
    enc.encrypt_padded_mut::<NoPadding>(&mut buf, n).ok()?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    Some(out)
}

/// Inverse of [`aes_encrypt`]; `None` if the data or its padding is malformed.
pub fn aes_decrypt(k2: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let key = k2.get(..16)?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return None;
    }
    let (iv, body) = data.split_at(16);
    let mut buf = body.to_vec();
    let dec = Aes128CbcDec::new_from_slices(key, iv).ok()?;
    let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?;
    let pad = *plain.last()? as usize;
    if pad >= 16 || pad + 1 > plain.len() {
        return None;
    }
    let end = plain.len() - 1 - pad;
    Some(plain[..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_round_trip_all_lengths() {
        let k2 = [7u8; 20];
        for n in 0..40 {
            let plain: Vec<u8> = (0..n as u8).collect();
            let c = aes_encrypt(&k2, [9; 16], &plain).unwrap();
            assert_eq!(c.len() % 16, 0);
            assert_eq!(aes_decrypt(&k2, &c).unwrap(), plain);
        }
        assert!(aes_decrypt(&k2, &[0u8; 17]).is_none());
    }

    #[test]
    fn lengths() {
        let r = RakpInputs {
            console_sid: 1,
            bmc_sid: 2,
            console_rand: [1; 16],
            bmc_rand: [2; 16],
            bmc_guid: [3; 16],
            role: 0x14,
            username: b"admin",
        };
        for (alg, full, icv) in [(AuthAlg::HmacSha1, 20, 12), (AuthAlg::HmacSha256, 32, 16)] {
            assert_eq!(rakp2_code(alg, b"secret", &r).len(), full);
            let k = session_keys(alg, b"secret", &r);
            assert_eq!(k.k1.len(), full);
            assert_eq!(rakp4_icv(alg, &k.sik, &r).len(), icv);
        }
        // A key shorter than the HMAC block is zero-padded by HMAC itself,
        // so a password padded to 20 bytes (as BMCs store it) gives the same code.
        let mut padded = b"secret".to_vec();
        padded.resize(20, 0);
        assert_eq!(
            rakp2_code(AuthAlg::HmacSha1, b"secret", &r),
            rakp2_code(AuthAlg::HmacSha1, &padded, &r)
        );
    }
}
