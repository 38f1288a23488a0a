//! The events of each user in memory: the last `max_per_user`, oldest first.

use std::collections::VecDeque;
use std::sync::RwLock;

use rustc_hash::FxHashMap;

use super::Event;

/// One remembered interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The item's raw id.
    pub item_id: String,
    /// The event's strength (from the event table).
    pub strength: f32,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Per-user event histories, bounded per user.
#[derive(Debug)]
pub struct EventStore {
    users: RwLock<FxHashMap<String, VecDeque<Stored>>>,
    max_per_user: usize,
}

impl EventStore {
    /// An empty store keeping at most `max_per_user` events per user (the latest).
    pub fn new(max_per_user: usize) -> Self {
        EventStore {
            users: RwLock::new(FxHashMap::default()),
            max_per_user: max_per_user.max(1),
        }
    }

    /// Adds `events` in order.
    pub fn apply(&self, events: &[Event]) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let list = users.entry(e.user_id.clone()).or_default();
            if list.len() == self.max_per_user {
                list.pop_front();
            }
            list.push_back(Stored {
                item_id: e.item_id.clone(),
                strength: e.strength,
                timestamp: e.timestamp,
            });
        }
    }

    /// The user's remembered events, oldest first (empty for a user without any).
    pub fn history(&self, user_id: &str) -> Vec<Stored> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users
            .get(user_id)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Users with at least one event.
    pub fn num_users(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_events_per_user_in_order() {
        let s = EventStore::new(2);
        let ev = |u: &str, i: &str, t| Event {
            user_id: u.into(),
            item_id: i.into(),
            event: "view".into(),
            strength: 1.0,
            timestamp: t,
        };
        s.apply(&[
            ev("a", "1", 1),
            ev("b", "9", 1),
            ev("a", "2", 2),
            ev("a", "3", 3),
        ]);
        let items: Vec<String> = s.history("a").into_iter().map(|e| e.item_id).collect();
        assert_eq!(items, ["2", "3"]);
        assert_eq!(s.history("b").len(), 1);
        assert!(s.history("c").is_empty());
        assert_eq!(s.num_users(), 2);
    }
}
