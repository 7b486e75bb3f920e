//! Standard output for the `sinkless` command.
//!
//! Rust ignores SIGPIPE, so `println!` panics once the reader of a pipe has gone
//! (`sinkless info | head`). [`print`] ends the process instead, quietly and with the status a
//! shell reports for a process that SIGPIPE killed, so that a pipeline under `pipefail` still
//! sees that the command did not finish.

use std::fmt;
use std::io::Write;

/// The exit status of a process killed by SIGPIPE (128 + 13), as shells report it.
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `text` to standard output; exits with [`BROKEN_PIPE_STATUS`] if it cannot.
pub fn print(text: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if out.write_fmt(text).and_then(|()| out.flush()).is_err() {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
}
