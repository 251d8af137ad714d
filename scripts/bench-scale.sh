#!/usr/bin/env bash
# Flat memory at scale: report, verify (and --against-source), rewrite-urls and rollback
# (dry run and real) over a synthetic migration of 100,000 and 1,000,000 objects — the
# generator and the measurement are tests/flat_memory.rs's (a manifest written as a run
# writes it, the objects in a file:// target, the source tree, an application table of
# URLs; the kernel's peak RSS of each command from wait4), in a release build. Fails when
# a command's peak at the larger size is over 1.3x the smaller's, or 100 MiB, or verify
# takes over 1.5x the time per object. Prints the table for docs/scale.md.
#
#   scripts/bench-scale.sh [SMALL,LARGE]     (default 100000,1000000; ~20 GB free disk
#                                             under TMPDIR for 1,000,000: two trees of
#                                             small files, the manifest, the index)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
sizes=${1:-100000,1000000}
R2MIGRATE_FLAT_SIZES=$sizes cargo test --release --locked --test flat_memory \
  commands_that_read_manifests_stay_flat -- --nocapture --test-threads 1 2>&1 \
  | grep -E '^\||^manifest at|x the time per object|test result|panicked'
