//! `spec.channel` files on arbitrary text: parsed strictly (a channel or an error), and a
//! channel that parses answers its look-ups, never panicking.
#![no_main]

use kopsrs_bootstrap::channel::Channel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(channel) = Channel::parse(text) else {
        return;
    };
    for version in ["1.34.1", "v1.31.0", "1.99.0", ""] {
        for cni in ["cilium", "calico", "kindnet", ""] {
            let _ = channel.select(version, cni);
        }
    }
});
