//! Throughput over time, as a small text chart: a run's copied bytes per time slice, from
//! the records' timestamps. Plain ASCII, so it reads the same in a terminal and a log.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use super::parse;
use crate::manifest::{Line, Manifest, Status};
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

/// Each run's throughput, from its `started` to its `finished` (RFC 3339): one more pass
/// over the manifests' lines, holding per object only the start of a transfer still
/// waiting for its outcome. A run that took no measurable time has no chart.
pub fn throughputs(
    paths: &[PathBuf],
    runs: &[(&str, &str, &str)],
) -> anyhow::Result<Vec<Throughput>> {
    let mut charts: Vec<(Throughput, OffsetDateTime)> = Vec::new();
    for &(run_id, started, finished) in runs {
        let (Some(start), Some(end)) = (parse(started), parse(finished)) else {
            continue;
        };
        let seconds = (end - start).as_seconds_f64();
        if seconds <= 0.0 {
            continue;
        }
        let slices = (seconds.ceil() as usize).clamp(1, SLICES);
        let t = Throughput {
            run_id: run_id.to_string(),
            slice_seconds: seconds / slices as f64,
            bytes: vec![0; slices],
            objects: vec![0; slices],
        };
        charts.push((t, start));
    }
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    let index: HashMap<String, usize> = charts
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (t.run_id.clone(), i))
        .collect();
    // When each object's transfer began: its first intent in its run.
    let mut began: HashMap<(usize, String), OffsetDateTime> = HashMap::new();
    for path in paths {
        Manifest::stream(path, |line| {
            match line {
                Line::Intent(i) => {
                    let chart = i.run_id.as_ref().and_then(|r| index.get(r));
                    if let (Some(&c), Some(at)) = (chart, parse(&i.at)) {
                        let first = began.entry((c, i.source_key)).or_insert(at);
                        *first = (*first).min(at);
                    }
                }
                Line::Object(r) => {
                    let chart = r.run_id.as_ref().and_then(|id| index.get(id));
                    let (Some(&c), Some(at)) = (chart, parse(&r.at)) else {
                        return Ok(());
                    };
                    let from = began.remove(&(c, r.source_key)).unwrap_or(at);
                    let (t, start) = &mut charts[c];
                    let (width, slices) = (t.slice_seconds, t.bytes.len());
                    t.objects[slice_of(*start, at, width, slices)] += 1;
                    if r.status == Status::Copied {
                        spread(&mut t.bytes, (*start, width), (from, at), r.size);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(charts.into_iter().map(|(t, _)| t).collect())
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
