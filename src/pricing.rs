//! R2's prices for `plan`'s estimate, in one place with their date: both storage classes,
//! the chosen one (`--storage-class`) first. Source-side costs (S3 GET and egress, GCS
//! egress) are the source provider's and are not estimated here.

use serde::Serialize;

/// When these prices were read from Cloudflare's R2 pricing page.
pub const PRICES_AS_OF: &str = "2025-01";
pub const STORAGE_PER_GB_MONTH: f64 = 0.015;
pub const CLASS_A_PER_MILLION: f64 = 4.50;
pub const CLASS_B_PER_MILLION: f64 = 0.36;
pub const IA_STORAGE_PER_GB_MONTH: f64 = 0.01;
pub const IA_CLASS_A_PER_MILLION: f64 = 9.00;
pub const IA_CLASS_B_PER_MILLION: f64 = 0.90;
pub const IA_RETRIEVAL_PER_GB: f64 = 0.01;

const GB: f64 = 1e9;

/// The operations a migration will make, counted by the plan.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Operations {
    /// PUT, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, ListObjectsV2, CopyObject.
    pub class_a: u64,
    /// HEAD and GET.
    pub class_b: u64,
}

impl Operations {
    /// One object's uploads: a PUT, or create + parts + complete; then a HEAD to verify.
    pub fn add_upload(&mut self, size: u64, threshold: u64, part_size: u64) {
        if size < threshold {
            self.class_a += 1;
        } else {
            self.class_a += 2 + crate::limits::parts_for(size, part_size);
        }
        self.class_b += 1;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub prices_as_of: &'static str,
    /// The class the run writes in; the two figures below are its.
    pub storage_class: &'static str,
    /// Bytes the target prefix will hold after the migration.
    pub stored_bytes: u64,
    pub storage_usd_per_month: f64,
    pub class_a_operations: u64,
    pub class_b_operations: u64,
    pub operations_usd: f64,
    pub standard: ClassCost,
    pub infrequent_access: ClassCost,
}

/// One storage class's price for this migration.
#[derive(Debug, Clone, Serialize)]
pub struct ClassCost {
    pub storage_usd_per_month: f64,
    /// The migration's own operations, once.
    pub operations_usd: f64,
    /// Reading the data back once (Infrequent Access charges retrieval).
    pub retrieval_usd_per_full_read: f64,
    /// Storage is billed for at least this many days per object.
    pub minimum_storage_days: u32,
}

fn class_cost(stored_bytes: u64, ops: &Operations, ia: bool) -> ClassCost {
    let gb = stored_bytes as f64 / GB;
    let (storage, a, b, retrieval, days) = if ia {
        (
            IA_STORAGE_PER_GB_MONTH,
            IA_CLASS_A_PER_MILLION,
            IA_CLASS_B_PER_MILLION,
            IA_RETRIEVAL_PER_GB,
            30,
        )
    } else {
        (
            STORAGE_PER_GB_MONTH,
            CLASS_A_PER_MILLION,
            CLASS_B_PER_MILLION,
            0.0,
            0,
        )
    };
    ClassCost {
        storage_usd_per_month: gb * storage,
        operations_usd: ops.class_a as f64 / 1e6 * a + ops.class_b as f64 / 1e6 * b,
        retrieval_usd_per_full_read: gb * retrieval,
        minimum_storage_days: days,
    }
}

/// The estimate for writing `stored_bytes` with `ops`, in Infrequent Access if `ia`.
pub fn estimate(stored_bytes: u64, ops: &Operations, ia: bool) -> Estimate {
    let standard = class_cost(stored_bytes, ops, false);
    let infrequent_access = class_cost(stored_bytes, ops, true);
    let chosen = if ia { &infrequent_access } else { &standard };
    Estimate {
        prices_as_of: PRICES_AS_OF,
        storage_class: if ia { "Infrequent Access" } else { "Standard" },
        stored_bytes,
        storage_usd_per_month: chosen.storage_usd_per_month,
        class_a_operations: ops.class_a,
        class_b_operations: ops.class_b,
        operations_usd: chosen.operations_usd,
        standard: standard.clone(),
        infrequent_access: infrequent_access.clone(),
    }
}

/// What the source's egress costs, at the price the user gives (`--source-egress-price`).
#[derive(Debug, Clone, Serialize)]
pub struct Egress {
    pub usd_per_gb: f64,
    /// Reading every selected byte out of the source once, for this migration.
    pub migration_read_usd: f64,
    /// What each later full read of the data costs at the source and not at R2, which
    /// charges no egress.
    pub saved_usd_per_full_read: f64,
}

pub fn egress(bytes: u64, usd_per_gb: f64) -> Egress {
    let usd = bytes as f64 / GB * usd_per_gb;
    Egress {
        usd_per_gb,
        migration_read_usd: usd,
        saved_usd_per_full_read: usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terabyte_of_small_objects() {
        let mut ops = Operations::default();
        for _ in 0..1000 {
            ops.add_upload(1_000_000, 64 << 20, 16 << 20);
        }
        let e = estimate(1_000_000_000_000, &ops, false);
        assert!((e.storage_usd_per_month - 15.0).abs() < 1e-9);
        assert_eq!(e.class_a_operations, 1000);
        assert_eq!(e.class_b_operations, 1000);
        assert!((e.operations_usd - (0.0045 + 0.00036)).abs() < 1e-9);
        // Infrequent Access: cheaper storage, dearer operations, retrieval, 30 days minimum.
        let ia = &e.infrequent_access;
        assert!((ia.storage_usd_per_month - 10.0).abs() < 1e-9);
        assert!((ia.operations_usd - (0.009 + 0.0009)).abs() < 1e-9);
        assert!((ia.retrieval_usd_per_full_read - 10.0).abs() < 1e-9);
        assert_eq!(ia.minimum_storage_days, 30);
        let chosen = estimate(1_000_000_000_000, &ops, true);
        assert_eq!(chosen.storage_class, "Infrequent Access");
        assert!((chosen.storage_usd_per_month - 10.0).abs() < 1e-9);
    }

    #[test]
    fn egress_is_priced_per_decimal_gigabyte() {
        let e = egress(2_500_000_000_000, 0.09); // 2.5 TB out of S3
        assert!((e.migration_read_usd - 225.0).abs() < 1e-9);
        assert!((e.saved_usd_per_full_read - 225.0).abs() < 1e-9);
    }

    #[test]
    fn multipart_objects_count_every_call() {
        let mut ops = Operations::default();
        ops.add_upload(100 << 20, 64 << 20, 16 << 20); // 7 parts
        assert_eq!(ops.class_a, 2 + 7);
    }
}
