//! A typed map for a plugin's own per-request state.

use std::any::{Any, TypeId};
use std::fmt;

/// A typed map for a plugin's own per-request state.
///
/// A request holds a handful of entries, looked up once per streamed chunk: a list compared by
/// `TypeId` finds them faster than hashing the key would.
#[derive(Default)]
pub struct Extensions {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Stores `value`, replacing an earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        let boxed: Box<dyn Any + Send + Sync> = Box::new(value);
        match self.entries.iter_mut().find(|(key, _)| *key == id) {
            Some((_, slot)) => std::mem::replace(slot, boxed)
                .downcast()
                .ok()
                .map(|old| *old),
            None => {
                self.entries.push((id, boxed));
                None
            }
        }
    }

    /// The stored value of type `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_ref())
    }

    /// The stored value of type `T`, mutable.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_mut())
    }

    /// Takes the stored value of type `T` out.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let at = self.entries.iter().position(|(key, _)| *key == id)?;
        self.entries
            .swap_remove(at)
            .1
            .downcast()
            .ok()
            .map(|value| *value)
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} entries)", self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_hold_one_value_per_type() {
        let mut ext = Extensions::default();
        assert_eq!(ext.insert(1u32), None);
        assert_eq!(ext.insert("text"), None);
        assert_eq!(
            ext.insert(2u32),
            Some(1),
            "a second value replaces the first"
        );
        *ext.get_mut::<u32>().unwrap() += 5;
        assert_eq!(ext.get::<u32>(), Some(&7));
        assert_eq!(ext.get::<&str>(), Some(&"text"));
        assert_eq!(ext.get::<u64>(), None);
        assert_eq!(ext.remove::<u32>(), Some(7));
        assert_eq!(ext.remove::<u32>(), None);
        assert_eq!(ext.get::<&str>(), Some(&"text"));
        assert_eq!(format!("{ext:?}"), "Extensions(1 entries)");
    }
}
