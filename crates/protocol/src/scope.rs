//! Operator scopes and the least-privilege scope of every method Homarus implements
//! (from OpenClaw's `methods-with-scopes.tsv`).
//!
//! Rules, as in OpenClaw: `operator.admin` allows everything; a method needing `operator.read` is also
//! allowed by `operator.write`; any other method needs its exact scope; an unclassified method needs
//! `operator.admin`.

/// The operator scopes of protocol v4.
pub const OPERATOR_SCOPES: &[&str] = &[
    Scope::READ,
    Scope::WRITE,
    Scope::ADMIN,
    Scope::APPROVALS,
    Scope::QUESTIONS,
    Scope::PAIRING,
    Scope::TALK,
    Scope::TALK_SECRETS,
];

/// Namespace for scope names.
pub struct Scope;

impl Scope {
    /// Read state.
    pub const READ: &'static str = "operator.read";
    /// Start runs, send messages.
    pub const WRITE: &'static str = "operator.write";
    /// Everything, including configuration.
    pub const ADMIN: &'static str = "operator.admin";
    /// Resolve approvals.
    pub const APPROVALS: &'static str = "operator.approvals";
    /// Answer questions.
    pub const QUESTIONS: &'static str = "operator.questions";
    /// Pair devices and nodes.
    pub const PAIRING: &'static str = "operator.pairing";
    /// Talk mode.
    pub const TALK: &'static str = "operator.talk";
    /// Talk secrets.
    pub const TALK_SECRETS: &'static str = "operator.talk.secrets";
}

/// Least-privilege scope of each implemented method. Keep sorted by method name.
const METHOD_SCOPES: &[(&str, &str)] = &[
    ("agent", Scope::WRITE),
    ("agent.wait", Scope::WRITE),
    ("agents.list", Scope::READ),
    ("channels.pairing.approve", Scope::PAIRING),
    ("channels.pairing.dismiss", Scope::PAIRING),
    ("channels.pairing.list", Scope::PAIRING),
    ("channels.status", Scope::READ),
    ("chat.abort", Scope::WRITE),
    ("chat.history", Scope::READ),
    ("chat.send", Scope::WRITE),
    ("commands.list", Scope::READ),
    ("config.apply", Scope::ADMIN),
    ("config.get", Scope::READ),
    ("config.patch", Scope::ADMIN),
    ("config.schema", Scope::READ),
    ("config.set", Scope::ADMIN),
    ("cron.add", Scope::ADMIN),
    ("cron.get", Scope::READ),
    ("cron.list", Scope::READ),
    ("cron.remove", Scope::ADMIN),
    ("cron.run", Scope::ADMIN),
    ("cron.runs", Scope::READ),
    ("cron.status", Scope::READ),
    ("cron.update", Scope::ADMIN),
    ("device.pair.approve", Scope::PAIRING),
    ("device.pair.list", Scope::PAIRING),
    ("device.pair.reject", Scope::PAIRING),
    ("device.pair.remove", Scope::PAIRING),
    ("health", Scope::READ),
    ("last-heartbeat", Scope::READ),
    ("logs.tail", Scope::READ),
    ("sessions.create", Scope::WRITE),
    ("sessions.delete", Scope::ADMIN),
    ("sessions.describe", Scope::READ),
    ("sessions.list", Scope::READ),
    ("sessions.patch", Scope::WRITE),
    ("sessions.reset", Scope::ADMIN),
    ("sessions.subscribe", Scope::READ),
    ("set-heartbeats", Scope::ADMIN),
    ("status", Scope::READ),
    ("system-presence", Scope::READ),
    ("tasks.cancel", Scope::WRITE),
    ("tasks.get", Scope::READ),
    ("tasks.list", Scope::READ),
    ("wake", Scope::WRITE),
];

/// The scopes a method needs (one, or admin for an unclassified method).
pub fn required_scopes(method: &str) -> &'static str {
    METHOD_SCOPES.binary_search_by(|(m, _)| m.cmp(&method)).map(|i| METHOD_SCOPES[i].1).unwrap_or(Scope::ADMIN)
}

/// The outcome of a scope check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeCheck {
    /// The call may proceed.
    Allowed,
    /// The call is refused for lack of this scope.
    Missing(&'static str),
}

/// Whether `granted` authorizes `method`.
pub fn scopes_satisfy(method: &str, granted: &[String]) -> ScopeCheck {
    let has = |s: &str| granted.iter().any(|g| g == s);
    if has(Scope::ADMIN) {
        return ScopeCheck::Allowed;
    }
    let required = required_scopes(method);
    let ok = if required == Scope::READ { has(Scope::READ) || has(Scope::WRITE) } else { has(required) };
    if ok {
        ScopeCheck::Allowed
    } else {
        ScopeCheck::Missing(required)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(METHOD_SCOPES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn admin_allows_all_write_implies_read_others_exact() {
        assert_eq!(scopes_satisfy("config.patch", &s(&[Scope::ADMIN])), ScopeCheck::Allowed);
        assert_eq!(scopes_satisfy("status", &s(&[Scope::WRITE])), ScopeCheck::Allowed);
        assert_eq!(scopes_satisfy("status", &s(&[])), ScopeCheck::Missing(Scope::READ));
        assert_eq!(scopes_satisfy("config.patch", &s(&[Scope::READ, Scope::WRITE])), ScopeCheck::Missing(Scope::ADMIN));
        assert_eq!(scopes_satisfy("device.pair.list", &s(&[Scope::READ])), ScopeCheck::Missing(Scope::PAIRING));
        assert_eq!(scopes_satisfy("device.pair.list", &s(&[Scope::PAIRING])), ScopeCheck::Allowed);
        assert_eq!(scopes_satisfy("no.such.method", &s(&[Scope::WRITE])), ScopeCheck::Missing(Scope::ADMIN));
    }
}
