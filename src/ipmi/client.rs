//! An RMCP+ session with one BMC, over tokio UDP.
//!
//! ```text
//!  Get Channel Auth Caps (v1.5, sessionless)   -- is RMCP+ there?
//!  Open Session (suite 17, else 3, or the one asked for)
//!  RAKP 1 -> RAKP 2 (verify the BMC knows the password)
//!  RAKP 3 -> RAKP 4 (verify the BMC derived the same SIK)
//!  Set Session Privilege Level (operator / administrator)
//!  commands ... (integrity + AES per suite; retransmit inside the deadline)
//!  Close Session (always: explicitly, or fire-and-forget on drop)
//! ```
//!
//! Every exchange resends with backoff until its deadline. A reply is taken
//! only if it matches what was asked: payload type, message tag, our session
//! id, a valid auth code, and the request's sequence number and command — so
//! a late reply to an earlier request is never taken for the current one.

use super::commands::{
    CloseSession, GetChannelAuthenticationCapabilities, GetCipherSuitesChunk, SetSessionPrivilege,
};
use super::crypto::{self, AuthAlg, CipherSuite, ConfAlg, IntegrityAlg, RakpInputs, SessionKeys};
use super::packet::{self, payload, Datagram, IpmiRequest, IpmiResponse};
use super::{completion_text, CipherChoice, IpmiError, Privilege};
use crate::secret::Secret;
use ipmi_rs::connection::{IpmiCommand, Message};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

/// Longest gap between retransmissions.
const MAX_RETRANSMIT: Duration = Duration::from_secs(2);
/// Longest wait for the answer to Close Session (a BMC that already
/// dropped the session never answers; a lost answer is no reason to wait).
const CLOSE_BUDGET: Duration = Duration::from_millis(1500);

/// How to reach and log in to a BMC.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// BMC key (Kg) as hex; `None` = the password is used (the common case).
    pub kg: Option<Secret>,
    pub privilege: Privilege,
    pub cipher: CipherChoice,
    /// Allow suite 0 / unauthenticated sessions (never by default).
    pub allow_insecure: bool,
    /// First retransmission interval; doubles up to 2 s.
    pub retransmit: Duration,
    /// Silence at the session's first message for this long: the BMC is
    /// unreachable ([`IpmiError::Unreachable`]).
    pub login_timeout: Duration,
}

/// Counts of one session's traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub sent: u32,
    pub retransmits: u32,
    pub ignored: u32,
}

/// Decides about one received datagram: `None` = not ours, keep waiting.
type Accept<'a, T> = &'a mut (dyn FnMut(&[u8]) -> Option<Result<T, IpmiError>> + Send);

struct Io {
    sock: UdpSocket,
    bmc: String,
    retransmit: Duration,
    stats: Stats,
}

impl Io {
    /// Send `build()` until `accept` takes a reply or the deadline passes.
    /// `build` is called for every (re)transmission.
    async fn exchange<T>(
        &mut self,
        stage: &str,
        deadline: Instant,
        build: &mut (dyn FnMut() -> Vec<u8> + Send),
        accept: Accept<'_, T>,
    ) -> Result<T, IpmiError> {
        let started = Instant::now();
        let mut interval = self.retransmit;
        let mut next_send = Instant::now();
        let mut sent_here = 0u32;
        let mut last_io_error: Option<String> = None;
        let mut buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(IpmiError::Timeout {
                    bmc: self.bmc.clone(),
                    stage: match last_io_error {
                        Some(e) => format!("{stage} (last error: {e})"),
                        None => stage.to_string(),
                    },
                    after: now - started,
                    sent: sent_here,
                });
            }
            if now >= next_send {
                let pkt = build();
                if let Err(e) = self.sock.send(&pkt).await {
                    last_io_error = Some(e.to_string());
                }
                if sent_here > 0 {
                    self.stats.retransmits += 1;
                }
                sent_here += 1;
                self.stats.sent += 1;
                next_send = now + interval;
                interval = (interval * 2).min(MAX_RETRANSMIT);
            }
            match timeout_at(next_send.min(deadline), self.sock.recv(&mut buf)).await {
                Err(_) => continue,
                Ok(Err(e)) => {
                    // ICMP errors (port unreachable) surface here on a
                    // connected socket: remember, keep trying until the deadline.
                    last_io_error = Some(e.to_string());
                    tokio::time::sleep_until(next_send.min(deadline)).await;
                }
                Ok(Ok(n)) => match accept(&buf[..n]) {
                    Some(r) => return r,
                    None => self.stats.ignored += 1,
                },
            }
        }
    }
}

/// The BMC's cipher suite ids (Get Channel Cipher Suites, sessionless v1.5).
async fn list_suites(io: &mut Io, deadline: Instant) -> Result<Vec<u8>, IpmiError> {
    let mut records = Vec::new();
    for index in 0..16u8 {
        let msg = Message::from(GetCipherSuitesChunk(index));
        let req = IpmiRequest {
            netfn: msg.netfn_raw(),
            cmd: msg.cmd(),
            rq_seq: index + 1,
            data: msg.data().to_vec(),
        }
        .encode();
        let seq = index + 1;
        let r = io
            .exchange(
                "Get Channel Cipher Suites",
                deadline,
                &mut || packet::encode_v15(0, 0, &req),
                // Some BMCs (pyghmi) answer in the v2.0 wrapper, session 0.
                &mut |d| match packet::decode(d, 0) {
                    Ok(Datagram::V15 { payload, .. })
                    | Ok(Datagram::V20 {
                        payload_type: payload::IPMI,
                        session_id: 0,
                        encrypted: false,
                        payload,
                        ..
                    }) => match IpmiResponse::decode(payload) {
                        Ok(r) if r.cmd == 0x54 && r.rq_seq == seq => Some(Ok(r)),
                        _ => None,
                    },
                    _ => None,
                },
            )
            .await?;
        if r.completion != 0 {
            return Err(proto(
                &io.bmc,
                format!(
                    "Get Channel Cipher Suites: completion code {:#04x}",
                    r.completion
                ),
            ));
        }
        let chunk = GetCipherSuitesChunk::parse_success_response(&r.data)
            .map_err(|_| proto(&io.bmc, "short Get Channel Cipher Suites reply"))?;
        let done = chunk.len() < 16;
        records.extend(chunk);
        if done {
            break;
        }
    }
    Ok(super::commands::suite_ids(&records))
}

/// How a handshake attempt failed.
enum Step {
    /// A step ran out of its budget: start over.
    Retry(IpmiError),
    /// Refused or broken: give up.
    Fatal(IpmiError),
}

fn retry_on_timeout(e: IpmiError) -> Step {
    if e.is_timeout() {
        Step::Retry(e)
    } else {
        Step::Fatal(e)
    }
}

/// A completed RAKP handshake.
struct Handshake {
    suite: CipherSuite,
    keys: SessionKeys,
    console_sid: u32,
    bmc_sid: u32,
}

/// One attempt at Open Session + RAKP 1-4.
async fn handshake(
    io: &mut Io,
    cfg: &ClientConfig,
    candidates: &[u8],
    known: bool,
    deadline: Instant,
) -> Result<Handshake, Step> {
    let bmc = io.bmc.clone();
    // Room for about four transmissions of one step.
    let budget = (cfg.retransmit * 15).max(Duration::from_millis(500));
    let step = || deadline.min(Instant::now() + budget);
    let console_sid = loop {
        let v: u32 = rand::random();
        if v != 0 {
            break v;
        }
    };
    let mut tag: u8 = rand::random();
    let mut refused = Vec::new();
    let mut chosen = None;
    for &id in candidates {
        let Some(suite) = CipherSuite::by_id(id) else {
            continue;
        };
        tag = tag.wrapping_add(1);
        let last = Some(&id) == candidates.last();
        let attempt_deadline = if known || last {
            step()
        } else {
            deadline.min(Instant::now() + cfg.retransmit * 3)
        };
        let req = packet::OpenSessionRequest {
            tag,
            max_privilege: cfg.privilege as u8,
            console_sid,
            auth: suite.auth as u8,
            integrity: suite.integrity as u8,
            conf: suite.conf as u8,
        }
        .encode();
        let t = tag;
        let resp = io
            .exchange(
                "Open Session",
                attempt_deadline,
                &mut || packet::encode_v20(payload::OPEN_SESSION_REQUEST, false, 0, 0, &req, None),
                &mut |d| match packet::decode(d, 0) {
                    Ok(Datagram::V20 {
                        payload_type: payload::OPEN_SESSION_RESPONSE,
                        payload,
                        ..
                    }) => match packet::OpenSessionResponse::decode(payload) {
                        Ok(r) if r.tag == t && r.console_sid == console_sid => Some(Ok(r)),
                        _ => None,
                    },
                    _ => None,
                },
            )
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(IpmiError::Timeout { .. }) if !last => {
                refused.push(format!("{id} (no answer)"));
                continue;
            }
            Err(e) => return Err(retry_on_timeout(e)),
        };
        if resp.status == 0 {
            if resp.bmc_sid == 0 {
                return Err(Step::Fatal(proto(&bmc, "the BMC assigned session id 0")));
            }
            let answered = (resp.auth, resp.integrity, resp.conf);
            if answered == (suite.auth as u8, suite.integrity as u8, suite.conf as u8) {
                chosen = Some((suite, resp.bmc_sid));
                break;
            }
            // The BMC answered with other algorithms (pyghmi does): take
            // them only if they form one of the suites we proposed to use.
            match CipherSuite::by_algorithms(resp.auth, resp.integrity, resp.conf) {
                Some(other) if candidates.contains(&other.id) => {
                    debug!(bmc = %bmc, asked = id, got = other.id, "the BMC chose another of our cipher suites");
                    chosen = Some((other, resp.bmc_sid));
                    break;
                }
                _ => {
                    refused.push(format!(
                        "{id} (answered with algorithms {answered:?}, not a suite we accept)"
                    ));
                    continue;
                }
            }
        }
        if status_is_cipher_mismatch(resp.status) {
            refused.push(format!("{id} ({})", packet::rmcp_status_text(resp.status)));
            continue;
        }
        return Err(Step::Fatal(IpmiError::Auth {
            bmc,
            detail: format!(
                "Open Session refused: {}",
                packet::rmcp_status_text(resp.status)
            ),
        }));
    }
    let Some((suite, bmc_sid)) = chosen else {
        return Err(Step::Fatal(IpmiError::Cipher {
            bmc,
            detail: format!(
                "no common cipher suite: the BMC refused {}; set cipher to one it supports",
                refused.join(", ")
            ),
        }));
    };

    // RAKP 1 / 2.
    let console_rand: [u8; 16] = rand::random();
    let role = (cfg.privilege as u8) | 0x10;
    let username = cfg.username.as_bytes().to_vec();
    tag = tag.wrapping_add(1);
    let t = tag;
    let rakp1 = packet::Rakp1 {
        tag,
        bmc_sid,
        console_rand,
        role,
        username: username.clone(),
    }
    .encode();
    let rakp2 = io
        .exchange(
            "RAKP 1",
            step(),
            &mut || packet::encode_v20(payload::RAKP1, false, 0, 0, &rakp1, None),
            &mut |d| match packet::decode(d, 0) {
                Ok(Datagram::V20 {
                    payload_type: payload::RAKP2,
                    payload,
                    ..
                }) => match packet::Rakp2::decode(payload) {
                    Ok(r) if r.tag == t && r.console_sid == console_sid => Some(Ok(r)),
                    _ => None,
                },
                _ => None,
            },
        )
        .await
        .map_err(retry_on_timeout)?;
    if rakp2.status != 0 {
        return Err(Step::Fatal(IpmiError::Auth {
            bmc,
            detail: format!(
                "RAKP 2: {} (check the user name `{}` and its privilege)",
                packet::rmcp_status_text(rakp2.status),
                cfg.username
            ),
        }));
    }
    let inputs = RakpInputs {
        console_sid,
        bmc_sid,
        console_rand,
        bmc_rand: rakp2.bmc_rand,
        bmc_guid: rakp2.bmc_guid,
        role,
        username: &username,
    };
    let password = cfg.password.expose().as_bytes();
    let expected = crypto::rakp2_code(suite.auth, password, &inputs);
    if !crypto::codes_equal(&expected, &rakp2.auth_code) {
        // Tell the BMC (RAKP 3 with an error status) so it frees the slot.
        let nack = packet::Rakp3 {
            tag: tag.wrapping_add(1),
            status: 0x0f,
            bmc_sid,
            auth_code: Vec::new(),
        }
        .encode();
        let _ = io.sock.try_send(&packet::encode_v20(
            payload::RAKP3,
            false,
            0,
            0,
            &nack,
            None,
        ));
        return Err(Step::Fatal(IpmiError::Auth {
            bmc,
            detail:
                "wrong password (the BMC's RAKP 2 auth code does not match): check the password"
                    .into(),
        }));
    }

    // RAKP 3 / 4.
    let kg_bytes = cfg
        .kg
        .as_ref()
        .and_then(|k| crate::secret::decode_hex(k.expose()));
    let kg = kg_bytes.as_deref().unwrap_or(password);
    let keys = crypto::session_keys(suite.auth, kg, &inputs);
    tag = tag.wrapping_add(1);
    let t = tag;
    let rakp3 = packet::Rakp3 {
        tag,
        status: 0,
        bmc_sid,
        auth_code: crypto::rakp3_code(suite.auth, password, &inputs),
    }
    .encode();
    let rakp4 = io
        .exchange(
            "RAKP 3",
            step(),
            &mut || packet::encode_v20(payload::RAKP3, false, 0, 0, &rakp3, None),
            &mut |d| match packet::decode(d, 0) {
                Ok(Datagram::V20 {
                    payload_type: payload::RAKP4,
                    payload,
                    ..
                }) => match packet::Rakp4::decode(payload) {
                    Ok(r) if r.tag == t && r.console_sid == console_sid => Some(Ok(r)),
                    _ => None,
                },
                _ => None,
            },
        )
        .await;
    match rakp4 {
        Ok(rakp4) => {
            if rakp4.status != 0 {
                return Err(Step::Fatal(IpmiError::Auth {
                    bmc,
                    detail: format!(
                        "RAKP 4: {} (check the password and the BMC key Kg)",
                        packet::rmcp_status_text(rakp4.status)
                    ),
                }));
            }
            let icv = crypto::rakp4_icv(suite.auth, &keys.sik, &inputs);
            if !crypto::codes_equal(&icv, &rakp4.icv) {
                return Err(Step::Fatal(IpmiError::Auth {
                    bmc,
                    detail: "RAKP 4 integrity check value does not match: check the BMC key (Kg)"
                        .into(),
                }));
            }
        }
        // RAKP 4 lost, and the BMC ignores repeated RAKP 3s once it has
        // activated the session. With an integrity-protected suite the
        // next reply's auth code (keyed by K1, derived from the SIK) proves
        // the BMC holds the same keys, so going on is as safe as RAKP 4.
        Err(IpmiError::Timeout { .. }) if suite.integrity != IntegrityAlg::None => {}
        Err(e) => return Err(retry_on_timeout(e)),
    }
    Ok(Handshake {
        suite,
        keys,
        console_sid,
        bmc_sid,
    })
}

/// An open RMCP+ session. Closed by [`Session::close`], or on drop.
pub struct Session {
    io: Option<Io>,
    suite: CipherSuite,
    keys: Option<SessionKeys>,
    console_sid: u32,
    bmc_sid: u32,
    seq: AtomicU32,
    rq_seq: u8,
    active: bool,
}

fn proto(bmc: &str, detail: impl Into<String>) -> IpmiError {
    IpmiError::Protocol {
        bmc: bmc.to_string(),
        detail: detail.into(),
    }
}

fn status_is_cipher_mismatch(status: u8) -> bool {
    matches!(status, 0x04 | 0x05 | 0x06 | 0x07 | 0x10 | 0x11)
}

impl Session {
    /// Open a session: resolve, negotiate, authenticate, raise privilege.
    pub async fn open(cfg: &ClientConfig, deadline: Instant) -> Result<Session, IpmiError> {
        let opened = Instant::now();
        let bmc = format!("{}:{}", cfg.host, cfg.port);
        let connect = |detail: String| IpmiError::Connect {
            bmc: bmc.clone(),
            detail,
        };
        if cfg.username.len() > 16 {
            return Err(IpmiError::Auth {
                bmc,
                detail: "user name is longer than the 16 bytes IPMI allows".into(),
            });
        }
        let addr: SocketAddr = timeout_at(
            deadline,
            tokio::net::lookup_host((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| connect("name resolution timed out".into()))?
        .map_err(|e| connect(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| connect("name resolves to no address".into()))?;
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| connect("bad local address".into()))?
        } else {
            "[::]:0"
                .parse()
                .map_err(|_| connect("bad local address".into()))?
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| connect(e.to_string()))?;
        sock.connect(addr)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let mut io = Io {
            sock,
            bmc: bmc.clone(),
            retransmit: cfg.retransmit,
            stats: Stats::default(),
        };

        // 1. Does the BMC speak RMCP+?
        let caps_req = IpmiRequest {
            netfn: 0x06,
            cmd: 0x38,
            rq_seq: 0,
            data: Message::from(GetChannelAuthenticationCapabilities::new(
                ipmi_rs::connection::Channel::Current,
                ipmi_rs::app::auth::PrivilegeLevel::Administrator,
            ))
            .data()
            .to_vec(),
        }
        .encode();
        let caps = io
            .exchange(
                "Get Channel Authentication Capabilities",
                deadline.min(Instant::now() + cfg.login_timeout),
                &mut || packet::encode_v15(0, 0, &caps_req),
                &mut |d| match packet::decode(d, 0) {
                    Ok(Datagram::V15 { payload, .. }) => match IpmiResponse::decode(payload) {
                        Ok(r) if r.cmd == 0x38 && r.netfn == 0x07 => Some(Ok(r)),
                        _ => None,
                    },
                    _ => None,
                },
            )
            .await
            .map_err(|e| match e {
                // nothing came back at all: no BMC is there for us
                IpmiError::Timeout {
                    bmc, after, sent, ..
                } if io.stats.ignored == 0 => IpmiError::Unreachable { bmc, after, sent },
                e => e,
            })?;
        if caps.completion != 0 {
            return Err(IpmiError::Completion {
                bmc,
                command: "Get Channel Authentication Capabilities".into(),
                code: caps.completion,
                text: completion_text(caps.completion).into(),
            });
        }
        let caps = GetChannelAuthenticationCapabilities::parse_success_response(&caps.data)
            .map_err(|_| proto(&bmc, "short Get Channel Authentication Capabilities reply"))?;
        if !caps.ipmi2_connections_supported {
            return Err(IpmiError::Cipher {
                bmc,
                detail: "the BMC does not offer IPMI v2.0 (RMCP+) on this channel; enable lanplus on the BMC".into(),
            });
        }

        // 2. Open Session, preferring 17 then 3 unless told. The BMC's list
        // of suites says which; a BMC that will not tell gets both proposed,
        // 17 with a short budget (some drop unknown algorithms silently).
        let (candidates, known): (Vec<u8>, bool) = match cfg.cipher {
            CipherChoice::Suite(n) => (vec![n], true),
            CipherChoice::Auto => {
                let probe_deadline = deadline.min(Instant::now() + cfg.retransmit * 4);
                match list_suites(&mut io, probe_deadline).await {
                    Ok(ids) => {
                        let pick: Vec<u8> = [17u8, 3]
                            .into_iter()
                            .filter(|id| ids.contains(id))
                            .collect();
                        if pick.is_empty() {
                            return Err(IpmiError::Cipher {
                                bmc,
                                detail: format!(
                                    "the BMC offers cipher suites {ids:?} but neither 17 nor 3; set cipher to one of them explicitly"
                                ),
                            });
                        }
                        (pick, true)
                    }
                    Err(_) => (vec![17, 3], false),
                }
            }
        };
        for &id in &candidates {
            let suite = CipherSuite::by_id(id).ok_or_else(|| IpmiError::Cipher {
                bmc: bmc.clone(),
                detail: format!("cipher suite {id} is not implemented (use 1, 2, 3, 15, 16 or 17)"),
            })?;
            if (suite.auth == AuthAlg::None || suite.integrity == IntegrityAlg::None)
                && !cfg.allow_insecure
            {
                return Err(IpmiError::Cipher {
                    bmc,
                    detail: format!(
                        "cipher suite {id} has no {}; refused (allow insecure suites explicitly if you must)",
                        if suite.auth == AuthAlg::None { "authentication" } else { "integrity protection" }
                    ),
                });
            }
        }

        // 3. The handshake (Open Session, RAKP 1-4): a lost datagram late in
        // it can leave the BMC ignoring our retransmissions, so each step has
        // a budget, and a step that runs out of it starts the handshake over.
        let mut last_retry: Option<IpmiError> = None;
        loop {
            if Instant::now() >= deadline {
                // Report the whole wait, not just the last step's.
                return Err(match last_retry {
                    Some(IpmiError::Timeout { stage, .. }) => IpmiError::Timeout {
                        bmc,
                        stage: format!("{stage} (session handshake, retried until the deadline)"),
                        after: opened.elapsed(),
                        sent: io.stats.sent,
                    },
                    Some(other) => other,
                    None => IpmiError::Timeout {
                        bmc,
                        stage: "the session handshake".into(),
                        after: opened.elapsed(),
                        sent: io.stats.sent,
                    },
                });
            }
            let hs = match handshake(&mut io, cfg, &candidates, known, deadline).await {
                Ok(hs) => hs,
                Err(Step::Retry(e)) => {
                    last_retry = Some(e);
                    continue;
                }
                Err(Step::Fatal(e)) => return Err(e),
            };
            let mut session = Session {
                io: Some(io),
                suite: hs.suite,
                keys: Some(hs.keys),
                console_sid: hs.console_sid,
                bmc_sid: hs.bmc_sid,
                seq: AtomicU32::new(1),
                rq_seq: 0,
                active: true,
            };
            // 4. Privilege: sessions start at User. Its authenticated reply
            // also proves key agreement when RAKP 4 was lost (see
            // `handshake`); no reply at all means the BMC dropped the
            // session (some do on a repeated RAKP 3): start over.
            let budget = deadline
                .min(Instant::now() + (cfg.retransmit * 15).max(Duration::from_millis(500)));
            let granted = session
                .send(SetSessionPrivilege(cfg.privilege as u8), budget)
                .await;
            match granted {
                Ok(level) if level >= cfg.privilege as u8 => return Ok(session),
                Ok(level) => {
                    session.close().await;
                    return Err(IpmiError::Auth {
                        bmc,
                        detail: format!(
                            "the BMC granted privilege level {level}, less than {:?}",
                            cfg.privilege
                        ),
                    });
                }
                Err(IpmiError::Completion { code, text, .. }) => {
                    session.close().await;
                    return Err(IpmiError::Auth {
                        bmc,
                        detail: format!(
                            "privilege {:?} refused (completion code {code:#04x}, {text}): use a user with that privilege or lower privlvl",
                            cfg.privilege
                        ),
                    });
                }
                Err(e) if e.is_timeout() && Instant::now() < deadline => {
                    last_retry = Some(e);
                    // Close it fire-and-forget in case it lives, reuse the socket.
                    let close = session.close_packet();
                    session.active = false;
                    io = match session.io.take() {
                        Some(io) => io,
                        None => return Err(proto(&bmc, "session lost its socket")),
                    };
                    let _ = io.sock.try_send(&close);
                    continue;
                }
                Err(e) => {
                    session.close().await;
                    return Err(e);
                }
            }
        }
    }

    /// The negotiated cipher suite.
    pub fn suite(&self) -> u8 {
        self.suite.id
    }

    /// Traffic counters.
    pub fn stats(&self) -> Stats {
        self.io.as_ref().map(|io| io.stats).unwrap_or_default()
    }

    fn next_seq(seq: &AtomicU32) -> u32 {
        // Session sequence numbers skip 0 when they wrap.
        let s = seq.fetch_add(1, Ordering::Relaxed);
        if s == 0 {
            seq.fetch_add(1, Ordering::Relaxed)
        } else {
            s
        }
    }

    /// Wrap an IPMI message for this session (encrypt + sign per suite).
    fn wrap(&self, msg: &[u8]) -> Vec<u8> {
        let Some(keys) = &self.keys else {
            return Vec::new();
        };
        let encrypted = self.suite.conf == ConfAlg::AesCbc128;
        let body = if encrypted {
            crypto::aes_encrypt(&keys.k2, rand::random(), msg).unwrap_or_default()
        } else {
            msg.to_vec()
        };
        let seq = Self::next_seq(&self.seq);
        let integrity = self.suite.integrity;
        let k1 = keys.k1.clone();
        let sign = move |b: &[u8]| crypto::integrity_code(integrity, &k1, b);
        let signer: Option<packet::Signer<'_>> = if integrity == IntegrityAlg::None {
            None
        } else {
            Some(&sign)
        };
        packet::encode_v20(payload::IPMI, encrypted, self.bmc_sid, seq, &body, signer)
    }

    /// Unwrap a datagram of this session into an IPMI response, or `None`
    /// if it is not one (wrong session, bad auth code, ...).
    fn unwrap(&self, d: &[u8]) -> Option<IpmiResponse> {
        let keys = self.keys.as_ref()?;
        let Datagram::V20 {
            payload_type,
            encrypted,
            authenticated,
            session_id,
            payload,
            signed,
            auth_code,
            ..
        } = packet::decode(d, self.suite.integrity.code_len()).ok()?
        else {
            return None;
        };
        if payload_type != payload::IPMI || session_id != self.console_sid {
            return None;
        }
        if self.suite.integrity != IntegrityAlg::None {
            if !authenticated {
                return None;
            }
            let want = crypto::integrity_code(self.suite.integrity, &keys.k1, signed);
            if !crypto::codes_equal(&want, auth_code) {
                return None;
            }
        }
        let plain;
        let msg = if self.suite.conf == ConfAlg::AesCbc128 {
            if !encrypted {
                return None;
            }
            plain = crypto::aes_decrypt(&keys.k2, payload)?;
            &plain[..]
        } else {
            payload
        };
        IpmiResponse::decode(msg).ok()
    }

    /// Send a command and wait for its response within `deadline`.
    pub async fn send<C>(&mut self, command: C, deadline: Instant) -> Result<C::Output, IpmiError>
    where
        C: IpmiCommand,
        C::Error: std::fmt::Debug,
    {
        let msg: Message = command.into();
        let (netfn, cmd) = (msg.netfn_raw(), msg.cmd());
        self.rq_seq = (self.rq_seq % 63) + 1;
        let rq_seq = self.rq_seq;
        let req = IpmiRequest {
            netfn,
            cmd,
            rq_seq,
            data: msg.data().to_vec(),
        }
        .encode();
        let name = format!("command netfn {netfn:#04x} cmd {cmd:#04x}");
        let mut io = self
            .io
            .take()
            .ok_or_else(|| proto("?", "session is closed"))?;
        let bmc = io.bmc.clone();
        let r = {
            let this = &*self;
            io.exchange(&name, deadline, &mut || this.wrap(&req), &mut |d| {
                let r = this.unwrap(d)?;
                (r.rq_seq == rq_seq && r.cmd == cmd && r.netfn == netfn + 1).then_some(Ok(r))
            })
            .await
        };
        self.io = Some(io);
        let r = r?;
        if r.completion != 0 {
            return Err(IpmiError::Completion {
                bmc,
                command: name,
                code: r.completion,
                text: completion_text(r.completion).into(),
            });
        }
        C::parse_success_response(&r.data)
            .map_err(|e| proto(&bmc, format!("{name}: unreadable reply: {e:?}")))
    }

    /// A Close Session request for this session, wrapped and signed.
    fn close_packet(&mut self) -> Vec<u8> {
        self.rq_seq = (self.rq_seq % 63) + 1;
        let req = IpmiRequest {
            netfn: 0x06,
            cmd: 0x3c,
            rq_seq: self.rq_seq,
            data: self.bmc_sid.to_le_bytes().to_vec(),
        }
        .encode();
        self.wrap(&req)
    }

    /// Close the session, waiting briefly for the BMC's answer.
    pub async fn close(mut self) {
        if !self.active {
            return;
        }
        let retransmit = self
            .io
            .as_ref()
            .map(|io| io.retransmit)
            .unwrap_or(CLOSE_BUDGET);
        let deadline = Instant::now() + CLOSE_BUDGET.min(retransmit * 4);
        if self
            .send(CloseSession(self.bmc_sid), deadline)
            .await
            .is_ok()
        {
            self.active = false;
        }
        // Not answered: Drop sends it twice more, fire-and-forget.
    }
}

impl Drop for Session {
    /// A session dropped while open (cancelled, timed out) is closed
    /// fire-and-forget, twice, so the BMC's session table does not fill up.
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        for _ in 0..2 {
            let pkt = self.close_packet();
            if let Some(io) = &self.io {
                let _ = io.sock.try_send(&pkt);
            }
        }
    }
}
