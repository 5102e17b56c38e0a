//! The one stable hash: which partition of the bus and which shard of the
//! store a key belongs to. Every node must agree on it across processes and
//! releases, which the std hasher does not promise; FNV-1a does, and is
//! cheap for the short keys it sees (conversation ids, usernames).

/// FNV-1a (64 bits) of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bucket of `key` among `n` (`0..n`): `stable_hash(key) % n`; 0 when
/// `n <= 1`.
pub fn bucket_of(key: &str, n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    (stable_hash(key.as_bytes()) % u64::from(n)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed values: a change here moves keys between partitions and
    /// shards of a running deployment.
    #[test]
    fn buckets_are_stable() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(bucket_of("anything", 1), 0);
        let spread: std::collections::HashSet<u32> = (0..100)
            .map(|i| bucket_of(&format!("d:{i}:{}", i + 1), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
