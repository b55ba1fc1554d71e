//! Tenant tiers (API.md §4.1).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantTier {
    Free,
    Dev,
    Pro,
    Enterprise,
}

impl TenantTier {
    pub const ALL: [TenantTier; 4] = [TenantTier::Free, TenantTier::Dev, TenantTier::Pro, TenantTier::Enterprise];

    /// Case-insensitive, as clients send it.
    pub fn parse(value: &str) -> Option<TenantTier> {
        TenantTier::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(value.trim()))
    }

    /// A stored value: anything unrecognised (imported data) counts as `free`, as the
    /// reference does.
    pub fn from_stored(value: &str) -> TenantTier {
        TenantTier::parse(value).unwrap_or(TenantTier::Free)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TenantTier::Free => "free",
            TenantTier::Dev => "dev",
            TenantTier::Pro => "pro",
            TenantTier::Enterprise => "enterprise",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_reads_unknown_as_free() {
        assert_eq!(TenantTier::parse("PRO"), Some(TenantTier::Pro));
        assert_eq!(TenantTier::parse("gold"), None);
        assert_eq!(TenantTier::from_stored("gold"), TenantTier::Free);
        assert_eq!(TenantTier::from_stored("Enterprise"), TenantTier::Enterprise);
    }
}
