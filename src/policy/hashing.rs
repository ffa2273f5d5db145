//! Stable hashes: FNV-1a, small and non-cryptographic, for spreading users over the refresh
//! period; SHA-256 for names that stand for a decision (the approval name of a plan).

use sha2::{Digest, Sha256};

/// The first 16 hex digits (64 bits) of SHA-256.
pub fn sha256_hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        // the reference values of FNV-1a 64
        assert_eq!(super::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // SHA-256("abc") = ba7816bf8f01cfea…
        assert_eq!(super::sha256_hex16(b"abc"), "ba7816bf8f01cfea");
    }
}
