use serde::{Deserialize, Serialize};

/// A capability a step grants a sandboxed plugin with `permissions:`. Logging and progress
/// are always available and need no grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Text generation through the host's LLM provider.
    Llm,
    /// Read the files passed to the step; store new ones.
    Artifacts,
    /// A key-value namespace of the plugin's own, kept across runs.
    Kv,
    /// The real wall clock (otherwise it reads 1970-01-01).
    Clock,
}

impl Permission {
    /// Every permission, in the order documentation lists them.
    pub const ALL: [Permission; 4] = [
        Permission::Llm,
        Permission::Artifacts,
        Permission::Kv,
        Permission::Clock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Llm => "llm",
            Permission::Artifacts => "artifacts",
            Permission::Kv => "kv",
            Permission::Clock => "clock",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The names of every permission, for help texts and schemas.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Permission::ALL.into_iter().map(Permission::as_str)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
