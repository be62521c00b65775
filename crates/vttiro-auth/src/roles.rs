//! Roles and what each may do. Tenancy is not a permission: every role but `admin` acts only
//! inside its own tenant, and the server answers 404 for another tenant's jobs so that their
//! existence does not leak.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in every tenant: keys, audit log, tenant policies.
    Admin,
    /// Submits, reads, cancels and deletes its tenant's jobs.
    Submitter,
    /// Reads its tenant's jobs and results.
    Reader,
    /// Scrapes `/metrics` and nothing else.
    Metrics,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    SubmitJob,
    ReadJob,
    CancelJob,
    DeleteJob,
    /// Export everything stored about a tenant (GDPR access).
    ExportTenant,
    ListModels,
    ReadMetrics,
    ManageKeys,
    ReadAudit,
    ManageTenants,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Submitter, Role::Reader, Role::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submitter => "submitter",
            Role::Reader => "reader",
            Role::Metrics => "metrics",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Submitter => matches!(
                permission,
                SubmitJob | ReadJob | CancelJob | DeleteJob | ExportTenant | ListModels
            ),
            Role::Reader => matches!(permission, ReadJob | ExportTenant | ListModels),
            Role::Metrics => matches!(permission, ReadMetrics),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    /// `key_…` for an API key, `jwt:<issuer>#<subject>` for a token, `anonymous` in open mode.
    pub id: String,
    pub tenant: String,
    pub role: Role,
    /// Overrides of the server-wide limits, from the key.
    pub requests_per_minute: Option<u32>,
    pub audio_minutes_per_day: Option<u32>,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            id: "anonymous".into(),
            tenant: "default".into(),
            role: Role::Admin,
            requests_per_minute: None,
            audio_minutes_per_day: None,
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }

    /// Whether this caller may see things belonging to `tenant`.
    pub fn sees_tenant(&self, tenant: &str) -> bool {
        self.role == Role::Admin || self.tenant == tenant
    }
}

/// Tenant names are path segments and metric-free labels: short, lowercase, plain.
pub(crate) fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_manages_keys_and_reads_the_audit_log() {
        for role in Role::ALL {
            assert_eq!(role.allows(Permission::ManageKeys), role == Role::Admin);
            assert_eq!(role.allows(Permission::ReadAudit), role == Role::Admin);
        }
        assert!(!Role::Reader.allows(Permission::SubmitJob));
        assert!(!Role::Metrics.allows(Permission::ReadJob));
        assert!(Role::Metrics.allows(Permission::ReadMetrics));
        assert!(!Role::Submitter.allows(Permission::ReadMetrics));
    }
}
