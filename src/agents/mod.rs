//! Agents as data: the built-in product templates (more arrives with the agents work: TOON,
//! workflows, research, memory).

pub mod templates;
