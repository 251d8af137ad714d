//! The large objects being uploaded right now, part by part: what the progress display
//! shows under its bar, so one 50 GiB object is not a bar that sits still for an hour.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One multipart upload in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Large {
    pub key: String,
    pub size: u64,
    /// Bytes of the parts the target has accepted.
    pub sent: u64,
    pub parts_done: u64,
    pub parts: u64,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    uploads: BTreeMap<u64, Large>,
}

/// Shared by the copier (which reports parts) and the progress display (which reads).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<Registry>>);

impl InFlight {
    /// Starts tracking an upload; it is forgotten when the handle is dropped, however
    /// the upload ends.
    pub fn start(&self, key: &str, size: u64, parts: u64) -> Tracked {
        let mut r = self.0.lock().expect("not poisoned");
        let id = r.next_id;
        r.next_id += 1;
        r.uploads.insert(
            id,
            Large {
                key: key.to_string(),
                size,
                sent: 0,
                parts_done: 0,
                parts,
            },
        );
        Tracked {
            registry: self.clone(),
            id,
        }
    }

    /// The uploads in flight, oldest first.
    pub fn snapshot(&self) -> Vec<Large> {
        let r = self.0.lock().expect("not poisoned");
        r.uploads.values().cloned().collect()
    }
}

/// One tracked upload.
pub struct Tracked {
    registry: InFlight,
    id: u64,
}

impl Tracked {
    pub fn part_sent(&self, bytes: u64) {
        let mut r = self.registry.0.lock().expect("not poisoned");
        if let Some(u) = r.uploads.get_mut(&self.id) {
            u.sent += bytes;
            u.parts_done += 1;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut r) = self.registry.0.lock() {
            r.uploads.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_counted_and_the_upload_forgotten_when_it_ends() {
        let f = InFlight::default();
        let a = f.start("a.bin", 30, 3);
        let b = f.start("b.bin", 10, 1);
        a.part_sent(10);
        a.part_sent(10);
        let now = f.snapshot();
        assert_eq!(now.len(), 2);
        assert_eq!(
            (now[0].key.as_str(), now[0].sent, now[0].parts_done),
            ("a.bin", 20, 2)
        );
        drop(a);
        assert_eq!(f.snapshot().len(), 1);
        drop(b);
        assert!(f.snapshot().is_empty());
    }
}
