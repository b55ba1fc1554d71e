//! Deployments and service health (DESIGN.md §7): configured targets run as process groups
//! with captured, capped and streamable output; services report from systemd, a health URL or
//! a log file.

pub mod output;
pub mod runner;
pub mod services;

pub use runner::{DeployEvent, Deployer};
