//! The environment of every process the harness starts (Azurite, the handler, Node).
//!
//! Each starts from an empty environment (`Command::env_clear`) and gets only what a test sets,
//! plus the few variables a process needs to run at all. A deny-list of "variables that configure
//! the handler" was the old way; it let anything it did not name through, so a developer's
//! `HEALTH_ALLOW_CIDRS`, `DISCOVERY_CACHE_TTL_MS`, `HOSTNAME` or `NODE_OPTIONS` changed what the
//! suite saw. An allow-list cannot go out of date that way.

use std::ffi::OsStr;
use std::process::Command;

/// Taken from the test runner when set, because without them a process cannot start or find its
/// tools, and none of them configures the handler, Azurite or the recipe's functions:
/// - `PATH`: Azurite's and the recipe driver's entry points are `#!/usr/bin/env node` scripts;
/// - `HOME`: Node's `os.homedir()` (npm-installed code may look there), and what a shell-less
///   process expects to exist;
/// - `TMPDIR`: so a child's temporary files go where the runner's go (the scratch directory is
///   under it too).
///
/// Deliberately absent: proxies (`HTTP_PROXY` & co., which reqwest in the handler and axios in the
/// recipe honour), `RUST_LOG`, `NODE_OPTIONS`, the host-name variables the handler names itself
/// from, and every setting the handler reads.
const PASSED_THROUGH: [&str; 3] = ["PATH", "HOME", "TMPDIR"];

/// A command for `program` with a cleared environment and only the pass-through variables set.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for name in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}
