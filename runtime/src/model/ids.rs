//! Where a host's ids come from: random by default, a seeded sequence in a simulation, so a
//! run can be replayed from its seed.

use std::sync::Mutex;

/// A source of fresh ids (32 hex digits, like a simple uuid): uuid v4, or a sequence drawn
/// from a seed.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    seeded: Option<Mutex<u64>>,
}

impl Ids {
    /// Random ids (uuid v4).
    pub(crate) fn random() -> Self {
        Ids { seeded: None }
    }

    /// The same sequence of ids for the same seed.
    pub(crate) fn seeded(seed: u64) -> Self {
        Ids {
            seeded: Some(Mutex::new(seed)),
        }
    }

    /// Whether the ids come from a seed.
    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded.is_some()
    }

    /// The next id.
    pub(crate) fn next(&self) -> String {
        match &self.seeded {
            None => uuid::Uuid::new_v4().simple().to_string(),
            Some(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let high = splitmix64(&mut state);
                let low = splitmix64(&mut state);
                format!("{high:016x}{low:016x}")
            }
        }
    }
}

/// One step of splitmix64: a small, well-mixed generator over a 64-bit state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_ids_and_another_seed_others() {
        let (a, b, c) = (Ids::seeded(7), Ids::seeded(7), Ids::seeded(8));
        let first: Vec<String> = (0..3).map(|_| a.next()).collect();
        assert_eq!(first, (0..3).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(first[0], c.next());
        assert_ne!(first[0], first[1]);
        assert_eq!(first[0].len(), 32);
    }

    #[test]
    fn random_ids_differ() {
        let ids = Ids::random();
        assert_ne!(ids.next(), ids.next());
        assert!(!ids.is_seeded());
    }
}
