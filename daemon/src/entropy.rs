//! Where the daemon's chance comes from: fresh ids (tasks, operations, the device) and the
//! jitter of retry and probe delays. The operating system by default; in tests, a seed.
//!
//! The simulation (`sync/simulation.rs`) runs a whole world on one thread and seeds this
//! thread's source, so that every id and every delay of a run follows from its seed and a
//! failing seed replays bit for bit. Production code never seeds anything.

use uuid::Uuid;

/// A new id: time-ordered (UUID v7) from the system, or drawn from this thread's seed.
pub(crate) fn new_id() -> Uuid {
    #[cfg(test)]
    if let Some(bits) = seeded::next() {
        let low = seeded::next().unwrap_or(bits);
        return uuid::Builder::from_random_bytes(
            ((u128::from(bits) << 64) | u128::from(low)).to_be_bytes(),
        )
        .into_uuid();
    }
    Uuid::now_v7()
}

/// A random fraction in `[0, 1)`, for jitter.
pub(crate) fn fraction() -> f64 {
    #[cfg(test)]
    if let Some(bits) = seeded::next() {
        return to_fraction(bits);
    }
    let mut bytes = [0u8; 8];
    // Jitter only spreads load: without the system's randomness, none is as good as any.
    match getrandom::fill(&mut bytes) {
        Ok(()) => to_fraction(u64::from_le_bytes(bytes)),
        Err(_) => 0.5,
    }
}

/// The top 53 bits of `bits` as a fraction in `[0, 1)`.
fn to_fraction(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The seeded source of tests: one generator per thread, set for the length of a run.
#[cfg(test)]
pub(crate) mod seeded {
    // The initializer is const; the clippy of the Windows cross toolchain (rustc-web) still
    // asks for it to be, so its lint is quieted here.
    #[allow(clippy::missing_const_for_thread_local)]
    mod state {
        use std::cell::Cell;

        thread_local! {
            pub(super) static STATE: Cell<Option<u64>> = const { Cell::new(None) };
        }
    }
    use state::STATE;

    /// Seeds this thread's source until the guard is dropped.
    pub(crate) fn seed(seed: u64) -> Guard {
        STATE.with(|state| state.set(Some(seed)));
        Guard(())
    }

    /// Unseeds the thread when dropped.
    pub(crate) struct Guard(());

    impl Drop for Guard {
        fn drop(&mut self) {
            STATE.with(|state| state.set(None));
        }
    }

    /// The next number of this thread's seeded generator, if it is seeded.
    pub(super) fn next() -> Option<u64> {
        STATE.with(|state| {
            let mut generator = SplitMix64(state.get()?);
            let next = generator.next();
            state.set(Some(generator.0));
            Some(next)
        })
    }

    /// splitmix64: a small, well-known deterministic generator (the thread's source above,
    /// and the simulation driver's own).
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct SplitMix64(pub(crate) u64);

    impl SplitMix64 {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_ids_and_fractions_and_the_system_does_not() {
        let draw = || {
            let _seeded = seeded::seed(7);
            (new_id(), new_id(), fraction())
        };
        let (a, b) = (draw(), draw());
        assert_eq!(a, b);
        assert_ne!(a.0, a.1);
        assert!((0.0..1.0).contains(&a.2));
        // Unseeded again: time-ordered ids from the system.
        assert_eq!(new_id().get_version_num(), 7);
        assert!((0.0..1.0).contains(&fraction()));
    }
}
