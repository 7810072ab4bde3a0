//! Injected randomness.
//!
//! Nothing in `caja-shared` reads the OS random source: code that needs random
//! bytes (request nonces, identifiers) takes a [`RandomSource`] from its caller.
//! Production passes a wrapper around ring's OS random source, which lives in the
//! IO crates; tests and the deterministic simulation pass [`SeededRandom`], so a
//! run is replayed exactly from its seed.

/// A source of random bytes.
///
/// Implementors only provide [`fill_bytes`](RandomSource::fill_bytes); the other
/// methods are helpers built on it.
pub trait RandomSource {
    /// Fills `dest` entirely with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);

    /// A random `u64`: eight bytes from [`fill_bytes`](RandomSource::fill_bytes),
    /// read little-endian.
    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// `n_bytes` random bytes as lowercase hex (`2 × n_bytes` characters), e.g. a
    /// request nonce. Callers pass small constants; the string is allocated whole.
    fn random_hex(&mut self, n_bytes: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        /// Bytes drawn per call to `fill_bytes`; bounds the stack buffer.
        const CHUNK_BYTES: usize = 64;
        let mut out = String::with_capacity(n_bytes.min(CHUNK_BYTES * 64) * 2);
        let mut chunk = [0u8; CHUNK_BYTES];
        let mut remaining = n_bytes;
        while remaining > 0 {
            let take = remaining.min(CHUNK_BYTES);
            let bytes = &mut chunk[..take];
            self.fill_bytes(bytes);
            for &b in bytes.iter() {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            remaining -= take;
        }
        debug_assert_eq!(out.len(), n_bytes.saturating_mul(2));
        out
    }
}

/// A mutable reference to a random source is a random source, so a generic
/// function can take `&mut rng` and leave the caller its generator.
impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        (**self).fill_bytes(dest);
    }

    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// A boxed random source (`Box<dyn RandomSource + Send>`) is a random source, for
/// components that pick their source at run time.
impl<R: RandomSource + ?Sized> RandomSource for Box<R> {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        (**self).fill_bytes(dest);
    }

    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// SplitMix64's increment (the golden-ratio constant).
const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference code):
/// advances `state` and returns the next output. Used only to expand a seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(SPLITMIX64_GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic random generator for tests and the simulation:
/// xoshiro256** (Blackman and Vigna, 2018) seeded from one `u64` through
/// SplitMix64, as its authors recommend.
///
/// **Not cryptographic.** Its output is predictable from a few outputs, and its
/// seed is printed in test logs. It must never produce device keys, HMAC keys,
/// request nonces or anything else secret or unguessable in production; production
/// uses ring's OS random source, in the IO crates.
///
/// Guarantees: the same seed gives the same bytes on every platform (the stream is
/// defined by little-endian `u64` words), and different seeds give different
/// streams — already the first `u64` differs, because each step of the seeding and
/// of the output function is a bijection. `fill_bytes` consumes whole `u64` words:
/// the unused bytes of a word are dropped, so the stream depends on how requests
/// are split (still deterministically).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRandom {
    s: [u64; 4],
}

impl SeededRandom {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // SplitMix64's outputs are a bijection of its counter, so at most one of
        // four consecutive outputs is zero: the all-zero state (from which
        // xoshiro never leaves) cannot occur.
        debug_assert!(s != [0; 4]);
        SeededRandom { s }
    }

    /// A generator started from a raw xoshiro256** state (for known-answer tests).
    #[cfg(test)]
    fn from_state(s: [u64; 4]) -> SeededRandom {
        SeededRandom { s }
    }

    /// One step of xoshiro256**.
    fn step(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

impl RandomSource for SeededRandom {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.step().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn take_u64s<R: RandomSource>(mut rng: R, n: usize) -> Vec<u64> {
        (0..n).map(|_| rng.next_u64()).collect()
    }

    fn take_bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        SeededRandom::new(seed).fill_bytes(&mut out);
        out
    }

    /// Known answers of the reference SplitMix64 for seed 1234567.
    #[test]
    fn splitmix64_matches_reference_outputs() {
        let mut state = 1_234_567;
        let got: Vec<u64> = (0..5).map(|_| splitmix64(&mut state)).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    /// Known answers of the reference xoshiro256** from state [1, 2, 3, 4] (the
    /// values the `rand_xoshiro` crate tests against the C reference).
    #[test]
    fn xoshiro256starstar_matches_reference_outputs() {
        let got = take_u64s(SeededRandom::from_state([1, 2, 3, 4]), 10);
        assert_eq!(
            got,
            [
                11_520,
                0,
                1_509_978_240,
                1_215_971_899_390_074_240,
                1_216_172_134_540_287_360,
                607_988_272_756_665_600,
                16_172_922_978_634_559_625,
                8_476_171_486_693_032_832,
                10_595_114_339_597_558_777,
                2_904_607_092_377_533_576,
            ]
        );
    }

    /// Pins the stream of one seed, so an accidental change of the generator (which
    /// would silently change every recorded simulation seed) fails here.
    #[test]
    fn seed_stream_is_pinned() {
        let mut rng = SeededRandom::new(0);
        assert_eq!(rng.random_hex(16), SEED_0_FIRST_16_BYTES_HEX);
    }

    const SEED_0_FIRST_16_BYTES_HEX: &str = "b4f275cb365fec992a455649781f6ebf";

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(take_bytes(42, 100), take_bytes(42, 100));
        let mut a = SeededRandom::new(42);
        let mut b = SeededRandom::new(42);
        assert_eq!(a.random_hex(32), b.random_hex(32));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a, b, "same state after the same requests");
    }

    #[test]
    fn different_seeds_different_streams() {
        assert_ne!(take_bytes(1, 32), take_bytes(2, 32));
        assert_ne!(take_bytes(0, 32), take_bytes(u64::MAX, 32));
    }

    #[test]
    fn next_u64_is_eight_filled_bytes_little_endian() {
        let mut a = SeededRandom::new(7);
        let mut b = SeededRandom::new(7);
        let mut bytes = [0u8; 8];
        for _ in 0..10 {
            a.fill_bytes(&mut bytes);
            assert_eq!(u64::from_le_bytes(bytes), b.next_u64());
        }
    }

    #[test]
    fn fill_bytes_handles_every_length() {
        for len in 0..=33 {
            let bytes = take_bytes(9, len);
            assert_eq!(bytes.len(), len);
            // Prefixes agree: a shorter request is the start of a longer one.
            assert_eq!(bytes[..], take_bytes(9, 40)[..len]);
        }
    }

    #[test]
    fn random_hex_is_lowercase_hex_of_twice_the_length() {
        let mut rng = SeededRandom::new(3);
        for n_bytes in [0, 1, 2, 16, 32, 63, 64, 65, 200] {
            let hex = rng.random_hex(n_bytes);
            assert_eq!(hex.len(), n_bytes * 2);
            assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        }
    }

    #[test]
    fn random_hex_encodes_the_filled_bytes() {
        let bytes = take_bytes(5, 100);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(SeededRandom::new(5).random_hex(100), expected);
    }

    #[test]
    fn mut_ref_and_box_forward_to_the_generator() {
        let mut rng = SeededRandom::new(11);
        let via_ref = take_u64s(&mut rng, 3);
        let boxed: Box<dyn RandomSource> = Box::new(SeededRandom::new(11));
        let via_box = take_u64s(boxed, 3);
        assert_eq!(via_ref, via_box);
        assert_eq!(via_ref, take_u64s(SeededRandom::new(11), 3));
        // The reference advanced the caller's generator.
        assert_eq!(rng.next_u64(), take_u64s(SeededRandom::new(11), 4)[3]);
    }

    proptest! {
        #[test]
        fn prop_same_seed_replays(seed in any::<u64>(), len in 0usize..200) {
            prop_assert_eq!(take_bytes(seed, len), take_bytes(seed, len));
        }

        #[test]
        fn prop_different_seeds_differ_in_first_word(a in any::<u64>(), b in any::<u64>()) {
            prop_assume!(a != b);
            prop_assert_ne!(
                SeededRandom::new(a).next_u64(),
                SeededRandom::new(b).next_u64()
            );
        }
    }
}
