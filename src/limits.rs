//! R2's limits, in one place: part sizes and count, the largest single PUT and object,
//! key and metadata sizes. `config` validates against them, `selection` and `plan`
//! refuse what breaks them, the uploader picks part sizes by them, and `pricing` counts
//! the calls they lead to.

pub const MIB: u64 = 1024 * 1024;
/// The smallest part (every part but the last) and the largest.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * 1024 * MIB;
/// Parts in one multipart upload at most.
pub const MAX_PARTS: u64 = 10_000;
/// Parts of one object in flight at once (rclone's default upload concurrency; R2 has been
/// seen to throttle many parallel parts of one upload). Parts of many objects add up to
/// `--concurrency` objects, all within one memory budget.
pub const PARTS_IN_FLIGHT: usize = 4;
/// A single PUT stays below 5 GiB − 5 MiB; bigger objects go in parts.
pub const MAX_SINGLE_PUT: u64 = MAX_PART - MIN_PART;
/// The largest object R2 stores (about 4.995 TiB).
pub const MAX_OBJECT: u64 = 4_995 * 1024 * MIB;
/// A key's length in bytes (UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;
/// An object's metadata, as R2 counts its request headers.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Part size for an object: the configured size, raised so no object needs more than
/// 10,000 parts (rounded up to whole MiB so every part but the last is equal).
pub fn part_size_for(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(needed).min(MAX_PART)
}

/// How many parts an object of `size` takes with the configured part size.
pub fn parts_for(size: u64, configured: u64) -> u64 {
    size.div_ceil(part_size_for(size, configured)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_keep_every_object_within_ten_thousand_parts() {
        assert_eq!(part_size_for(100 * MIB, 16 * MIB), 16 * MIB);
        let huge = 1024 * 1024 * MIB; // 1 TiB
        let p = part_size_for(huge, 16 * MIB);
        assert!(huge.div_ceil(p) <= MAX_PARTS);
        assert_eq!(p % MIB, 0);
        assert!(parts_for(MAX_OBJECT, MIN_PART) <= MAX_PARTS);
        assert_eq!(parts_for(100 * MIB, 16 * MIB), 7);
    }
}
