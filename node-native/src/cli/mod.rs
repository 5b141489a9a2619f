//! The `weft` program: argument parsing, the `--json` interface, and the interactive prompt.

pub mod args;
pub mod json;
mod resolve;
pub mod run;
mod ui;
