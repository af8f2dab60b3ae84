//! Entity ids: `@name@key`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{Error, ErrorKind};

/// The id of an entity: its name (case-insensitive, kept lower case) and its key
/// (case-sensitive). Prints as `@name@key`, which is also its instance id in the store.
///
/// ```
/// use durable::EntityId;
///
/// let id = EntityId::new("Counter", "Game1");
/// assert_eq!(id.to_string(), "@counter@Game1");
/// assert_eq!(id, "@COUNTER@Game1".parse().unwrap());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityId {
    name: String,
    key: String,
}

/// The registered name of an entity type, which is what [`EntityId::of`] needs. Implemented
/// for every [`Entity`](crate::Entity) (the types with an `#[entity]` impl block); not meant
/// to be implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an entity",
    label = "expected a type with an `#[entity]` impl block",
    note = "add `#[entity]` to an `impl {Self} {{ ... }}` block whose methods are the operations"
)]
pub trait EntityName {
    /// The entity's name (lower case).
    const NAME: &'static str;
}

impl EntityId {
    /// An id from a name and a key.
    pub fn new(name: impl AsRef<str>, key: impl Into<String>) -> Self {
        EntityId {
            name: name.as_ref().to_lowercase(),
            key: key.into(),
        }
    }

    /// The id of the class-style entity `E` with this key.
    ///
    /// ```
    /// use durable::EntityId;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter;
    /// # #[durable::entity] impl Counter { pub fn get(&self) -> i64 { 0 } }
    /// assert_eq!(EntityId::of::<Counter>("game1").to_string(), "@counter@game1");
    /// ```
    pub fn of<E: EntityName>(key: impl Into<String>) -> Self {
        EntityId::new(E::NAME, key)
    }

    /// The entity's name, lower case.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether an instance id names an entity.
    pub fn is_entity_instance(instance_id: &str) -> bool {
        instance_id.starts_with('@')
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

impl std::str::FromStr for EntityId {
    type Err = Error;

    /// Parses `@name@key`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("`{s}` is not an entity id; expected `@name@key`"),
            )
        };
        let rest = s.strip_prefix('@').ok_or_else(bad)?;
        let (name, key) = rest.split_once('@').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(EntityId::new(name, key))
    }
}
