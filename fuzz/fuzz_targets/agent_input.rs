//! What Pacemaker or an operator feeds a fence agent (stdin options) and
//! what an external agent prints as metadata must never panic the parsers.
#![no_main]

use ironfence::agent::{metadata::AgentMetadata, options, spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in spec::KINDS {
        if let Some(specs) = spec::params_for(kind) {
            let _ = options::parse_stdin(&specs, &text);
            let args: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            let _ = options::parse_args(&specs, &args);
        }
    }
    let _ = AgentMetadata::parse(&text);
});
