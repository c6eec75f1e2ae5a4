//! Who is calling and where they may act: roles from the token and the region subtree
//! (scope) that every read and write is confined to.

use std::fmt;

use super::region::RegionCode;

/// A role named in a token's `roles` claim (api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    GridWorker,
    VillageAdmin,
    TownOperator,
    DeptHandler,
    Mediator,
    WindowClerk,
    Hotline,
    Auditor,
    PiiReader,
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 10] = [
        Role::GridWorker,
        Role::VillageAdmin,
        Role::TownOperator,
        Role::DeptHandler,
        Role::Mediator,
        Role::WindowClerk,
        Role::Hotline,
        Role::Auditor,
        Role::PiiReader,
        Role::Admin,
    ];

    /// The claim spelling, e.g. `grid_worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridWorker => "grid_worker",
            Role::VillageAdmin => "village_admin",
            Role::TownOperator => "town_operator",
            Role::DeptHandler => "dept_handler",
            Role::Mediator => "mediator",
            Role::WindowClerk => "window_clerk",
            Role::Hotline => "hotline",
            Role::Auditor => "auditor",
            Role::PiiReader => "pii_reader",
            Role::Admin => "admin",
        }
    }

    /// Parses the claim spelling.
    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Parses the roles of a token to be issued: every name must be a role, and at least one
    /// must grant something (`pii_reader` only widens what another role may read).
    pub fn parse_grant(names: &[String]) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for n in names {
            let r = Role::parse(n.trim()).ok_or_else(|| {
                let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {n:?}; roles are {}", all.join(", "))
            })?;
            roles.push(r);
        }
        if roles.iter().all(|r| *r == Role::PiiReader) {
            return Err("a token needs at least one role besides pii_reader".into());
        }
        Ok(roles)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The region subtree a principal may act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole country (token claim `region: "*"`), for national administrators.
    All,
    /// One region and everything below it.
    Subtree(RegionCode),
}

impl Scope {
    /// Parses the `region` claim: `*` or a region code.
    pub fn parse(claim: &str) -> Option<Scope> {
        if claim == "*" {
            return Some(Scope::All);
        }
        RegionCode::parse(claim).ok().map(Scope::Subtree)
    }

    /// Whether the code (any string; invalid codes are simply outside) lies in the scope.
    pub fn contains(&self, code: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subtree(root) => code.starts_with(root.as_str()),
        }
    }

    /// Whether the region `code` lies in the scope or holds it (an ancestor of its root): the
    /// two lie on one line of the tree.
    pub fn overlaps(&self, code: &str) -> bool {
        self.contains(code) || self.prefix().starts_with(code)
    }

    /// The code prefix every row in scope starts with (empty for the whole country).
    pub fn prefix(&self) -> &str {
        match self {
            Scope::All => "",
            Scope::Subtree(root) => root.as_str(),
        }
    }
}

impl Scope {
    /// The scope of a read that asks for `requested` (or for everything the caller may see
    /// when `None`): the requested subtree if it lies inside this scope, else `None`.
    pub fn within(&self, requested: Option<&RegionCode>) -> Option<Scope> {
        match requested {
            None => Some(self.clone()),
            Some(code) if self.contains(code.as_str()) => Some(Scope::Subtree(code.clone())),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Subtree(c) => f.write_str(c.as_str()),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: a user or system id.
    pub sub: String,
    /// Roles held (unknown role names in the token are ignored).
    pub roles: Vec<Role>,
    /// Where the principal may act.
    pub scope: Scope,
    /// The handling unit (department code) it acts for, from the token's `unit` claim.
    pub unit: Option<String>,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the principal holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// Whether the principal acts for handling unit `assignee`: its `unit` claim names it, or
    /// it is the assigned worker itself.
    pub fn acts_for(&self, assignee: &str) -> bool {
        !assignee.is_empty() && (self.unit.as_deref() == Some(assignee) || self.sub == assignee)
    }

    /// Role names, for audit events and logs.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tokens_are_issued_only_with_roles_that_grant_something() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Role::parse_grant(&names(&[])).is_err());
        assert!(Role::parse_grant(&names(&[""])).is_err());
        assert!(Role::parse_grant(&names(&["visitor"])).is_err());
        assert!(Role::parse_grant(&names(&["pii_reader"])).is_err());
        assert!(Role::parse_grant(&names(&["grid_worker", "root"])).is_err());
        assert_eq!(
            Role::parse_grant(&names(&["mediator", "pii_reader"])),
            Ok(vec![Role::Mediator, Role::PiiReader])
        );
    }

    #[test]
    fn village_scope_contains_its_grids_only() {
        let s = Scope::parse("500110111201").unwrap();
        assert!(s.contains("500110111201"));
        assert!(s.contains("500110111201001"));
        assert!(!s.contains("500110111200"));
        assert!(!s.contains("500110111"));
        assert!(!s.contains(""));
    }

    #[test]
    fn within_refuses_outside_requests() {
        let s = Scope::parse("500110111201").unwrap();
        assert_eq!(s.within(None), Some(s.clone()));
        assert_eq!(
            s.within(Some(&code("500110111201001"))),
            Scope::parse("500110111201001")
        );
        assert_eq!(s.within(Some(&code("500110111200"))), None);
        assert_eq!(s.within(Some(&code("500110111"))), None);
        assert_eq!(Scope::All.within(Some(&code("11"))), Scope::parse("11"));
    }

    #[test]
    fn overlapping_regions_are_on_one_line_of_the_tree() {
        let s = Scope::parse("500110111201").unwrap();
        assert!(s.overlaps("500110111201001"));
        assert!(s.overlaps("500110111"));
        assert!(s.overlaps(""));
        assert!(!s.overlaps("500110111200"));
        assert!(Scope::All.overlaps("11"));
    }

    #[test]
    fn scope_claim_parsing() {
        assert_eq!(Scope::parse("*"), Some(Scope::All));
        assert_eq!(Scope::parse("abc"), None);
        assert_eq!(Scope::parse(""), None);
    }
}
