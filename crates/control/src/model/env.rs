//! Project environment variables (`POST /v10/projects/{idOrName}/env`): what is sent and what
//! Vercel answers.

use serde::{Deserialize, Deserializer, Serialize};

use super::null_as_default;
use crate::Secret;

/// How an environment variable is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvType {
    /// Encrypted at rest, readable.
    Encrypted,
    /// Plain text.
    Plain,
    /// Write-only.
    Sensitive,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvTarget {
    /// Production deployments.
    Production,
    /// Preview deployments.
    Preview,
    /// `vercel dev`.
    Development,
    /// A value this client does not know (received only).
    #[serde(other)]
    Unknown,
}

/// One variable for `POST /v10/projects/{idOrName}/env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// Name.
    pub key: String,
    /// Value (a secret as far as this client's `Debug` goes).
    pub value: Secret,
    /// Storage type.
    #[serde(rename = "type")]
    pub kind: EnvType,
    /// Environments it applies to.
    pub target: Vec<EnvTarget>,
}

/// A variable Vercel created or updated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedEnvVar {
    /// Vercel's id of the variable.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub key: String,
    /// Storage type.
    #[serde(rename = "type", default)]
    pub kind: Option<EnvType>,
    /// Environments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: Vec<EnvTarget>,
}

/// Why one variable was not written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvFailure {
    /// The error.
    pub error: EnvError,
}

/// The error of one variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvError {
    /// Stable code.
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// The variable's key.
    #[serde(default)]
    pub key: Option<String>,
}

/// The answer to an env upsert: `created` may be one object or an array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvUpsert {
    /// Variables written.
    #[serde(deserialize_with = "one_or_many")]
    pub created: Vec<CreatedEnvVar>,
    /// Variables refused.
    #[serde(default, deserialize_with = "null_as_default")]
    pub failed: Vec<EnvFailure>,
}

fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
        Nothing(()),
    }
    Ok(match OneOrMany::<T>::deserialize(deserializer)? {
        OneOrMany::Many(items) => items,
        OneOrMany::One(item) => vec![item],
        OneOrMany::Nothing(()) => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_upsert_takes_one_or_many_created() {
        let one: EnvUpsert =
            serde_json::from_str(r#"{"created":{"key":"A","type":"plain"},"failed":[]}"#).unwrap();
        assert_eq!(one.created.len(), 1);
        let many: EnvUpsert =
            serde_json::from_str(r#"{"created":[{"key":"A"},{"key":"B"}]}"#).unwrap();
        assert_eq!(many.created.len(), 2);
    }
}
