//! Throughput over time, as a small text chart: a run's copied bytes per time slice, from
//! the records' timestamps. Plain ASCII, so it reads the same in a terminal and a log.

use std::collections::HashMap;

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
    // When each object's transfer began: its first intent in this run.
    let mut began: HashMap<&str, OffsetDateTime> = HashMap::new();
    let intents = manifests
        .iter()
        .flat_map(|m| m.intents.iter().map(|(_, i)| i));
    for i in intents.filter(|i| i.run_id.as_deref() == Some(run_id)) {
        if let Some(at) = parse(&i.at) {
            let first = began.entry(i.source_key.as_str()).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let records = manifests.iter().flat_map(|m| &m.records);
    for r in records.filter(|r| r.run_id.as_deref() == Some(run_id)) {
        let Some(at) = parse(&r.at) else { continue };
        let i = slice_of(start, at, width, slices);
        t.objects[i] += 1;
        if r.status == Status::Copied {
            let from = began.get(r.source_key.as_str()).copied().unwrap_or(at);
            spread(&mut t.bytes, (start, width), (from, at), r.size);
        }
    }
    Some(t)
}

/// Adds an object's `bytes` to the slices its transfer spanned (intent to outcome), each
/// its share of the time: a large object moving at a steady rate reads as that rate, not
/// as nothing and then a spike in the slice where it finished. Every byte is counted once.
fn spread(
    slices: &mut [u64],
    (start, width): (OffsetDateTime, f64),
    (from, to): (OffsetDateTime, OffsetDateTime),
    bytes: u64,
) {
    let end = width * slices.len() as f64;
    let a = (from - start).as_seconds_f64().clamp(0.0, end);
    let b = (to - start).as_seconds_f64().clamp(a, end);
    let last = slice_of(start, to, width, slices.len());
    if b - a <= 0.0 {
        slices[last] += bytes;
        return;
    }
    let first = slice_of(start, from, width, slices.len()).min(last);
    let mut given = 0;
    for (i, slot) in slices.iter_mut().enumerate().take(last).skip(first) {
        let overlap = (b.min((i + 1) as f64 * width) - a.max(i as f64 * width)).max(0.0);
        let share = (bytes as f64 * overlap / (b - a)) as u64;
        *slot += share;
        given += share;
    }
    slices[last] += bytes - given.min(bytes);
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
    fn an_object_is_spread_over_the_slices_its_transfer_spanned() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let at = |s: f64| start + time::Duration::seconds_f64(s);
        let mut slices = vec![0u64; 5];
        // 4,000 bytes from 0.5 s to 4.5 s: 500 in the first and last second, 1,000 between.
        spread(&mut slices, (start, 1.0), (at(0.5), at(4.5)), 4000);
        assert_eq!(slices, vec![500, 1000, 1000, 1000, 500]);
        // No time at all: all in its slice; every byte counted once, whatever the rounding.
        spread(&mut slices, (start, 1.0), (at(2.2), at(2.2)), 7);
        spread(&mut slices, (start, 1.0), (at(0.0), at(3.0)), 10);
        assert_eq!(slices.iter().sum::<u64>(), 4017);
    }

    #[test]
    fn the_last_instant_falls_in_the_last_slice() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let end = start + time::Duration::seconds(10);
        assert_eq!(slice_of(start, end, 0.5, 20), 19);
        assert_eq!(slice_of(start, start, 0.5, 20), 0);
    }
}
