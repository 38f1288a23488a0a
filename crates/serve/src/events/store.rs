//! The events of each user in memory: the last `max_per_user`, oldest first, for at
//! most `max_users` users — beyond that the least recently active user (the one
//! whose latest event is the oldest) is forgotten. Eviction follows the log order, so
//! replaying the log after a restart forgets the same users.

use std::collections::{BTreeMap, VecDeque};
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

/// Per-user event histories, bounded per user and in users.
#[derive(Debug)]
pub struct EventStore {
    state: RwLock<Users>,
    max_per_user: usize,
    max_users: usize,
}

#[derive(Debug, Default)]
struct Users {
    /// User → (its last activity stamp, its events).
    by_id: FxHashMap<String, (u64, VecDeque<Stored>)>,
    /// Activity stamp → user: the least recently active first.
    order: BTreeMap<u64, String>,
    /// The next activity stamp.
    clock: u64,
    /// Users forgotten so far.
    evicted: u64,
}

impl EventStore {
    /// An empty store keeping at most `max_per_user` events per user (the latest)
    /// for at most `max_users` users (the most recently active).
    pub fn new(max_per_user: usize, max_users: usize) -> Self {
        EventStore {
            state: RwLock::new(Users::default()),
            max_per_user: max_per_user.max(1),
            max_users: max_users.max(1),
        }
    }

    /// Adds `events` in order.
    pub fn apply(&self, events: &[Event]) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let Users {
            by_id,
            order,
            clock,
            evicted,
        } = &mut *st;
        for e in events {
            *clock += 1;
            let entry = by_id
                .entry(e.user_id.clone())
                .or_insert_with(|| (0, VecDeque::new()));
            if entry.0 != 0 {
                order.remove(&entry.0);
            }
            entry.0 = *clock;
            order.insert(*clock, e.user_id.clone());
            let list = &mut entry.1;
            if list.len() == self.max_per_user {
                list.pop_front();
            }
            list.push_back(Stored {
                item_id: e.item_id.clone(),
                strength: e.strength,
                timestamp: e.timestamp,
            });
            while by_id.len() > self.max_users {
                let Some((_, user)) = order.pop_first() else {
                    break;
                };
                by_id.remove(&user);
                *evicted += 1;
            }
        }
    }

    /// The user's remembered events, oldest first (empty for a user without any).
    pub fn history(&self, user_id: &str) -> Vec<Stored> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.by_id
            .get(user_id)
            .map(|(_, l)| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Users with at least one event remembered.
    pub fn num_users(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .len()
    }

    /// Users forgotten to stay within the bound.
    pub fn num_evicted(&self) -> u64 {
        self.state.read().unwrap_or_else(|p| p.into_inner()).evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_events_per_user_in_order() {
        let s = EventStore::new(2, 100);
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

    #[test]
    fn the_least_recently_active_user_is_forgotten_beyond_the_bound() {
        let s = EventStore::new(5, 2);
        let ev = |u: &str, t| Event {
            user_id: u.into(),
            item_id: format!("i{t}"),
            event: "view".into(),
            strength: 1.0,
            timestamp: t,
        };
        // a, b, then a again: b is the least recently active when c arrives.
        s.apply(&[ev("a", 1), ev("b", 2), ev("a", 3), ev("c", 4)]);
        assert_eq!(s.num_users(), 2);
        assert_eq!(s.num_evicted(), 1);
        assert!(s.history("b").is_empty());
        assert_eq!(s.history("a").len(), 2);
        // Then a is the oldest: d forgets it, and a user coming back starts afresh.
        s.apply(&[ev("d", 5), ev("a", 6)]);
        assert!(s.history("c").is_empty(), "c was older than d and a");
        let items: Vec<String> = s.history("a").into_iter().map(|e| e.item_id).collect();
        assert_eq!(items, ["i6"]);
        assert_eq!((s.num_users(), s.num_evicted()), (2, 3));
    }
}
