//! What every command-line program of the project does with its arguments and its outcome, so
//! that the shipped `vmext-detect` and the test harness behave alike at the edges.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use crate::scan::exit;

/// Parses the arguments into `C` and hands them to `run`.
///
/// Help and version go to stdout with status 0; a usage error goes to stderr with status 2;
/// help that cannot be written (a closed or full stdout) is reported on stderr with status 2,
/// never a panic. `run`'s status is the program's; its error is printed on stderr as
/// `<program>: <error>`, formatted with `{:#}` (for an `anyhow::Error`, the whole chain of
/// causes), status 2.
pub fn main<C, E>(program: &str, run: impl FnOnce(C) -> Result<u8, E>) -> ExitCode
where
    C: clap::Parser,
    E: Display,
{
    let args = match C::try_parse() {
        Ok(args) => args,
        Err(e) => {
            return match (e.print(), e.use_stderr()) {
                (Ok(()), false) => ExitCode::SUCCESS,
                (Err(w), false) => {
                    let _ = writeln!(std::io::stderr(), "{program}: cannot write to stdout: {w}");
                    ExitCode::from(exit::FAILED)
                }
                (_, true) => ExitCode::from(exit::FAILED),
            };
        }
    };
    match run(args) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{program}: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}
