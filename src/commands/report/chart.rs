//! Throughput over time, as a small text chart: a run's copied bytes per time slice, from
//! the records' timestamps. Plain ASCII, so it reads the same in a terminal and a log.

use serde::Serialize;
use time::OffsetDateTime;

use super::parse;
use crate::manifest::{Manifest, Status};
use crate::output::human_bytes;

/// At most this many slices per run.
const SLICES: usize = 20;
const BAR_WIDTH: usize = 40;

#[derive(Debug, Serialize)]
pub struct Throughput {
    pub run_id: String,
    pub slice_seconds: f64,
    /// Bytes copied in each slice, oldest first.
    pub bytes: Vec<u64>,
    pub objects: Vec<u64>,
}

/// One run's throughput, from `started` to `finished` (RFC 3339); `None` when it took no
/// measurable time.
pub fn throughput(
    manifests: &[Manifest],
    run_id: &str,
    started: &str,
    finished: &str,
) -> Option<Throughput> {
    let (start, end) = (parse(started)?, parse(finished)?);
    let seconds = (end - start).as_seconds_f64();
    if seconds <= 0.0 {
        return None;
    }
    let slices = (seconds.ceil() as usize).clamp(1, SLICES);
    let width = seconds / slices as f64;
    let mut t = Throughput {
        run_id: run_id.to_string(),
        slice_seconds: width,
        bytes: vec![0; slices],
        objects: vec![0; slices],
    };
    let records = manifests.iter().flat_map(|m| &m.records);
    for r in records.filter(|r| r.run_id.as_deref() == Some(run_id)) {
        let Some(at) = parse(&r.at) else { continue };
        let i = slice_of(start, at, width, slices);
        t.objects[i] += 1;
        if r.status == Status::Copied {
            t.bytes[i] += r.size;
        }
    }
    Some(t)
}

fn slice_of(start: OffsetDateTime, at: OffsetDateTime, width: f64, slices: usize) -> usize {
    let offset = (at - start).as_seconds_f64().max(0.0);
    ((offset / width) as usize).min(slices - 1)
}

/// "  +12s  ##########              3.2 MiB/s  (40 objects)", one line per slice.
pub fn lines(t: &Throughput) -> Vec<String> {
    let max = t.bytes.iter().copied().max().unwrap_or(0).max(1);
    t.bytes
        .iter()
        .zip(&t.objects)
        .enumerate()
        .map(|(i, (&bytes, &objects))| {
            let bar = "#".repeat((bytes as f64 / max as f64 * BAR_WIDTH as f64).round() as usize);
            let rate = bytes as f64 / t.slice_seconds;
            format!(
                "+{:>6.1}s  {bar:<BAR_WIDTH$}  {:>10}/s  ({objects} objects)",
                i as f64 * t.slice_seconds,
                human_bytes(rate as u64)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_slice() {
        let t = Throughput {
            run_id: "r".into(),
            slice_seconds: 2.0,
            bytes: vec![4 << 20, 2 << 20, 0],
            objects: vec![4, 2, 1],
        };
        let l = lines(&t);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].matches('#').count(), BAR_WIDTH, "{}", l[0]);
        assert_eq!(l[1].matches('#').count(), BAR_WIDTH / 2, "{}", l[1]);
        assert_eq!(l[2].matches('#').count(), 0);
        assert!(
            l[0].contains("2.0 MiB/s") && l[0].contains("(4 objects)"),
            "{}",
            l[0]
        );
        assert!(l[1].starts_with("+   2.0s"), "{}", l[1]);
    }

    #[test]
    fn the_last_instant_falls_in_the_last_slice() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let end = start + time::Duration::seconds(10);
        assert_eq!(slice_of(start, end, 0.5, 20), 19);
        assert_eq!(slice_of(start, start, 0.5, 20), 0);
    }
}
