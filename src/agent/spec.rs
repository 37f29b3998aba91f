//! Parameter tables of our own fence agents: the options every agent takes
//! (the `fencing.py` standard set, so Pacemaker and operators can pass what
//! they pass to any fence agent) plus each kind's own.

/// Type of a parameter, as metadata.rng names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Boolean,
    String,
    Second,
    Integer,
    Select(&'static [&'static str]),
}

impl ParamKind {
    pub fn rng_type(self) -> &'static str {
        match self {
            ParamKind::Boolean => "boolean",
            ParamKind::String => "string",
            ParamKind::Second => "second",
            ParamKind::Integer => "integer",
            ParamKind::Select(_) => "select",
        }
    }
}

/// One parameter of an agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Canonical name (stdin key, `_` spelling).
    pub name: &'static str,
    pub short: Option<char>,
    /// Long option without `--` (`-` spelling).
    pub long: Option<&'static str>,
    /// Placeholder shown in `getopt`, e.g. `ip`.
    pub placeholder: &'static str,
    pub kind: ParamKind,
    pub default: Option<&'static str>,
    pub required: bool,
    pub deprecated: bool,
    /// This parameter replaces the named deprecated one.
    pub obsoletes: Option<&'static str>,
    /// Accepted but not listed in metadata (e.g. `nodename` from Pacemaker).
    pub hidden: bool,
    pub shortdesc: &'static str,
}

const fn p(
    name: &'static str,
    short: Option<char>,
    long: &'static str,
    placeholder: &'static str,
    kind: ParamKind,
    default: Option<&'static str>,
    shortdesc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        short,
        long: Some(long),
        placeholder,
        kind,
        default,
        required: false,
        deprecated: false,
        obsoletes: None,
        hidden: false,
        shortdesc,
    }
}

impl ParamSpec {
    /// The `getopt mixed` attribute of metadata, e.g. `-o, --action=[action]`.
    pub fn getopt(&self) -> String {
        let long = self.long.unwrap_or(self.name);
        let long = if self.kind == ParamKind::Boolean {
            format!("--{long}")
        } else {
            format!("--{long}=[{}]", self.placeholder)
        };
        match self.short {
            Some(c) => format!("-{c}, {long}"),
            None => long,
        }
    }
    const fn deprecated_alias(mut self, name: &'static str) -> Self {
        self.name = name;
        self.deprecated = true;
        self.obsoletes = None;
        self
    }
    const fn obsoleting(mut self, old: &'static str) -> Self {
        self.obsoletes = Some(old);
        self
    }
    const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }
}

use ParamKind::{Boolean, Integer, Second, Select};
const STR: ParamKind = ParamKind::String;

/// The options every fence agent of ours accepts.
pub fn common_params() -> Vec<ParamSpec> {
    let plug = p(
        "plug",
        Some('n'),
        "plug",
        "id",
        STR,
        None,
        "Physical plug number on device, UUID or identification of machine",
    );
    let debug_file = p(
        "debug_file",
        Some('D'),
        "debug-file",
        "debugfile",
        STR,
        None,
        "Write debug information to given file",
    );
    vec![
        p(
            "action",
            Some('o'),
            "action",
            "action",
            STR,
            Some("reboot"),
            "Fencing action",
        ),
        plug.obsoleting("port"),
        plug.deprecated_alias("port"),
        p(
            "nodename",
            None,
            "nodename",
            "nodename",
            STR,
            None,
            "Name of the node to be fenced (passed by Pacemaker)",
        )
        .hidden(),
        p(
            "quiet",
            Some('q'),
            "quiet",
            "",
            Boolean,
            None,
            "Disable logging to stderr. Does not affect --verbose or --debug-file.",
        ),
        p(
            "verbose",
            Some('v'),
            "verbose",
            "",
            Boolean,
            None,
            "Verbose mode",
        ),
        p(
            "verbose_level",
            None,
            "verbose-level",
            "level",
            Integer,
            None,
            "Level of debugging detail in output",
        ),
        debug_file.obsoleting("debug"),
        debug_file.deprecated_alias("debug"),
        p(
            "version",
            Some('V'),
            "version",
            "",
            Boolean,
            None,
            "Display version information and exit",
        ),
        p(
            "help",
            Some('h'),
            "help",
            "",
            Boolean,
            None,
            "Display help and exit",
        ),
        p(
            "plug_separator",
            None,
            "plug-separator",
            "char",
            STR,
            Some(","),
            "Separator for plug parameter when specifying more than 1 plug",
        ),
        p(
            "separator",
            Some('C'),
            "separator",
            "char",
            STR,
            Some(","),
            "Separator for CSV created by 'list' operation",
        ),
        p(
            "delay",
            None,
            "delay",
            "seconds",
            Second,
            Some("0"),
            "Wait X seconds before fencing is started",
        ),
        p(
            "disable_timeout",
            None,
            "disable-timeout",
            "true/false",
            STR,
            None,
            "Disable timeout (true/false) (default: true when run from Pacemaker 2.0+)",
        ),
        p(
            "login_timeout",
            None,
            "login-timeout",
            "seconds",
            Second,
            Some("5"),
            "Wait X seconds for cmd prompt after login",
        ),
        p(
            "power_timeout",
            None,
            "power-timeout",
            "seconds",
            Second,
            Some("20"),
            "Test X seconds for status change after ON/OFF",
        ),
        p(
            "power_wait",
            None,
            "power-wait",
            "seconds",
            Second,
            Some("0"),
            "Wait X seconds after issuing ON/OFF",
        ),
        p(
            "shell_timeout",
            None,
            "shell-timeout",
            "seconds",
            Second,
            Some("3"),
            "Wait X seconds for cmd prompt after issuing command",
        ),
        p(
            "stonith_status_sleep",
            None,
            "stonith-status-sleep",
            "seconds",
            Second,
            Some("1"),
            "Sleep X seconds between status calls during a STONITH action",
        ),
        p(
            "retry_on",
            None,
            "retry-on",
            "attempts",
            Integer,
            Some("1"),
            "Count of attempts to retry power on",
        ),
    ]
}

/// Parameters of `fence_ironfence_sim` (the simulated BMC).
pub fn sim_params() -> Vec<ParamSpec> {
    let mut v = vec![
        p("state_file", None, "state-file", "path", STR, Some("/tmp/ironfence-sim.json"), "JSON file holding the simulated power state of every plug (shared with ironfenced's sim devices)"),
        p("fault", None, "fault", "fault", Select(&["none", "slow", "silent", "refuses", "lies"]), Some("none"), "Fault the simulated BMC injects"),
        p("slow_by", None, "slow-by", "seconds", Second, Some("2"), "Delay of every answer when fault=slow"),
        p("hosts", None, "hosts", "list", STR, None, "Comma-separated plugs reported by the list action"),
    ];
    v.extend(common_params());
    v
}

/// The BMC address and credentials, as fence_ipmilan and fence_redfish
/// spell them: `ip`, `username`, `password`, `password_script`.
fn login_params() -> [ParamSpec; 4] {
    [
        p(
            "ip",
            Some('a'),
            "ip",
            "ip",
            STR,
            None,
            "IP address or hostname of fencing device",
        ),
        p(
            "username",
            Some('l'),
            "username",
            "name",
            STR,
            None,
            "Login name",
        ),
        p(
            "password",
            Some('p'),
            "password",
            "password",
            STR,
            None,
            "Login password or passphrase",
        ),
        p(
            "password_script",
            Some('S'),
            "password-script",
            "script",
            STR,
            None,
            "Script to run to retrieve password",
        ),
    ]
}

/// Parameters of `fence_ironfence_ipmi`: every option `fence_ipmilan`
/// documents, with the same names, letters and meanings, plus
/// `allow_insecure`. Options that only steer ipmitool are accepted and
/// have no effect (we speak RMCP+ ourselves).
pub fn ipmi_params() -> Vec<ParamSpec> {
    let [ip, username, password, script] = login_params();
    let sudo = p("use_sudo", None, "use-sudo", "", Boolean, None, "Use sudo (without password) when calling 3rd party software (no effect: no 3rd party software is called)");
    let mut v = vec![
        p("auth", Some('A'), "auth", "auth", Select(&["md5", "password", "none"]), None, "IPMI Lan Auth type (IPMI v1.5 only; ignored: ironfence always uses RMCP+)"),
        p("cipher", Some('C'), "cipher", "cipher", STR, None, "Ciphersuite to use (same as ipmitool -C parameter); default: 17 if the BMC offers it, else 3"),
        p("hexadecimal_kg", None, "hexadecimal-kg", "key", STR, None, "Hexadecimal-encoded Kg key for IPMIv2 authentication"),
        ip.obsoleting("ipaddr"),
        ip.deprecated_alias("ipaddr"),
        p("ipport", Some('u'), "ipport", "port", Integer, Some("623"), "TCP/UDP port to use for connection with device"),
        p("lanplus", Some('P'), "lanplus", "", Boolean, Some("0"), "Use Lanplus to improve security of connection (always on in ironfence)"),
        username.deprecated_alias("login"),
        p("method", Some('m'), "method", "method", Select(&["onoff", "cycle"]), Some("onoff"), "Method to fence"),
        password.deprecated_alias("passwd"),
        script.deprecated_alias("passwd_script"),
        password.obsoleting("passwd"),
        script.obsoleting("passwd_script"),
        p("privlvl", Some('L'), "privlvl", "level", Select(&["callback", "user", "operator", "administrator"]), Some("administrator"), "Privilege level on IPMI device"),
        p("target", None, "target", "targetaddress", STR, None, "Bridge IPMI requests to the remote target address (not supported)"),
        username.obsoleting("login"),
        p("ipmitool_path", None, "ipmitool-path", "path", STR, Some("/usr/bin/ipmitool"), "Path to ipmitool binary (no effect)"),
        p("port_as_ip", None, "port-as-ip", "", Boolean, None, "Make \"port/plug\" to be an alias to IP address"),
        p("ipmitool_timeout", None, "ipmitool-timeout", "timeout", STR, Some("2"), "Timeout (sec) for IPMI operation (no effect; see login_timeout and power_timeout)"),
        sudo.deprecated_alias("sudo"),
        sudo.obsoleting("sudo"),
        p("sudo_path", None, "sudo-path", "path", STR, Some("/usr/bin/sudo"), "Path to sudo binary (no effect)"),
        p("allow_insecure", None, "allow-insecure", "", Boolean, Some("0"), "Allow cipher suites without authentication or integrity (0, 1, 15)"),
    ];
    v.extend(
        common_params()
            .into_iter()
            .filter(|s| s.name != "separator"),
    );
    v
}

/// Parameters of `fence_ironfence_redfish`: every option `fence_redfish`
/// documents, with the same names and meanings, plus TLS pinning, a CA file
/// and the auth mode.
pub fn redfish_params() -> Vec<ParamSpec> {
    let [ip, username, password, script] = login_params();
    let mut v = vec![
        ip.obsoleting("ipaddr"),
        ip.deprecated_alias("ipaddr"),
        p("ipport", Some('u'), "ipport", "port", Integer, Some("443"), "TCP/UDP port to use for connection with device"),
        username.deprecated_alias("login"),
        password.deprecated_alias("passwd"),
        script.deprecated_alias("passwd_script"),
        password.obsoleting("passwd"),
        script.obsoleting("passwd_script"),
        p("redfish_uri", None, "redfish-uri", "uri", STR, Some("/redfish/v1"), "Base or starting Redfish URI"),
        p("ssl", Some('z'), "ssl", "", Boolean, Some("1"), "Use SSL connection with verifying certificate"),
        p("ssl_insecure", None, "ssl-insecure", "", Boolean, None, "Use SSL connection without verifying certificate"),
        p("ssl_secure", None, "ssl-secure", "", Boolean, None, "Use SSL connection with verifying certificate"),
        p("systems_uri", None, "systems-uri", "uri", STR, None, "Redfish Systems resource URI, i.e. /redfish/v1/Systems/System.Embedded.1"),
        username.obsoleting("login"),
        p("port_as_ip", None, "port-as-ip", "", Boolean, None, "Make \"port/plug\" to be an alias to IP address"),
        p("gnutlscli_path", None, "gnutlscli-path", "path", STR, Some("/usr/bin/gnutls-cli"), "Path to gnutls-cli binary (no effect)"),
        p("ssl_fingerprint", None, "ssl-fingerprint", "sha256", STR, None, "Accept only the BMC certificate with this SHA-256 fingerprint (AB:CD:...)"),
        p("ssl_ca_file", None, "ssl-ca-file", "path", STR, None, "PEM file of the CA that signed the BMC's certificate"),
        p("auth", None, "auth", "mode", Select(&["auto", "session", "basic"]), Some("auto"), "Login through SessionService (session), HTTP basic auth (basic), or session with fallback to basic (auto)"),
        p("profile", None, "profile", "name", STR, Some("auto"), "Vendor profile from firmware-configs (auto = matched from the BMC's answers)"),
    ];
    v.extend(
        common_params()
            .into_iter()
            .filter(|s| s.name != "separator"),
    );
    v
}

/// Parameters of `fence_ironfence_sbd`: every option `fence_sbd` documents
/// (with the `crashdump` of fence-agents after 4.12), with the same names
/// and meanings, plus `sector_size` for disk images in regular files.
/// `sbd_path` is accepted and has no effect: the disks are read and written
/// directly.
pub fn sbd_params() -> Vec<ParamSpec> {
    let mut v = vec![
        p("devices", None, "devices", "device_a,device_b", STR, None, "SBD Device"),
        p("method", Some('m'), "method", "method", Select(&["onoff", "cycle"]), Some("cycle"), "Method to fence"),
        p("sbd_path", None, "sbd-path", "path", STR, Some("/usr/sbin/sbd"), "Path to SBD binary (no effect: ironfence reads and writes the disks itself)"),
        p("crashdump", None, "crashdump", "", Boolean, None, "Crashdump instead of regular fence"),
        p("sector_size", None, "sector-size", "bytes", Integer, None, "Sector size (512 or 4096) of an sbd disk image in a regular file; block devices report theirs"),
    ];
    v.extend(common_params().into_iter().map(|mut s| {
        // fence_sbd waits longer than the usual 20 s.
        if s.name == "power_timeout" {
            s.default = Some("30");
        }
        s
    }));
    v
}

/// Parameters of an agent kind, or None for an unknown kind.
pub fn params_for(kind: &str) -> Option<Vec<ParamSpec>> {
    match kind {
        "sim" => Some(sim_params()),
        "ipmi" => Some(ipmi_params()),
        "redfish" => Some(redfish_params()),
        "sbd" => Some(sbd_params()),
        _ => None,
    }
}

/// Kinds `ironfence agent KIND` serves.
pub const KINDS: &[&str] = &["ipmi", "redfish", "sbd", "sim"];
