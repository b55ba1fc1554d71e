//! Built-in tools the tool coordinator can run.

pub mod calculator;
pub mod toolbox;
