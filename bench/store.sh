#!/usr/bin/env bash
# bench/store.sh - keeping logs: `mailwarden ingest` into the store and
# `mailwarden logs search --store` over ~10 million stored events, each beside
# an anchor measured in the same run.
#
#   bench/store.sh                 build, prepare data, measure, print the figures
#   SKIP_BUILD=1 bench/store.sh    use the existing release binary
#
# What it measures (best of $RUNS runs, pinned to one core):
#   1. ingest: `mailwarden ingest --data-dir NEW FILE` on the 10x corpus log
#      (698,610 lines): events/s end to end (read, frame, parse, stitch, index,
#      commit with fsync) and store bytes per event. Anchors on the same lines:
#        - pflogsumm --smtpd-stats --detail 10 (the usual tool over a mail log;
#          it reads and reports, it keeps nothing);
#        - sqlite3 `.import` of the raw lines into a one-column table (the
#          floor: storing the lines in SQLite with no parsing and no index).
#   2. search: a store of 15 copies of the 10x log, each moved 30 days later
#      (10,479,150 events, 451 days; made by the store crate's ingest_bench
#      example, which shifts the dates), then `mailwarden logs search --store
#      --sender ADDR` (the whole command: process start, opening every day
#      file, output). Anchor: `grep -c -F ADDR` over the same lines, exported
#      from the store with `logs parse --store --raw` into one plain file (what
#      an admin does without a store). The same for `mailwarden investigate
#      --store --sender ADDR` (messages, account history, coverage, verdict).
#
# Environment: CORPUS (default ../shared/corpus), SKIP_BUILD, RUNS (default 3),
# BENCH_CPU (default 0), KEEP=1 keeps the 10M-event store in bench/data/.
# Needs: pflogsumm, libdate-calc-perl, sqlite3, GNU time, perl, ~6 GB of disk.
# Exit status: 0 done, 1 a check failed, 2 missing prerequisite.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DATA=$BENCH/data
CORPUS=${CORPUS:-$(cd "$ROOT/.." && pwd)/shared/corpus}
RUNS=${RUNS:-3}
BENCH_CPU=${BENCH_CPU:-0}
RFC_GZ=$CORPUS/logs/postfix-production/test/mail.log.gz
CLASSIC_GZ=$CORPUS/logs/postfix-production/derived/mail.classic.log.gz
SENDER=${SENDER:-postmaster@mailer-service.de}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
MW=$TARGET_DIR/release/mailwarden

say() { printf '%s\n' "$*" >&2; }
die() { say "store.sh: $1"; exit "${2:-2}"; }

[[ -r $RFC_GZ && -r $CLASSIC_GZ ]] || die "the benchmark needs the corpus at $CORPUS (set CORPUS=...)"
PFLOGSUMM=${PFLOGSUMM:-$(command -v pflogsumm || echo /usr/sbin/pflogsumm)}
[[ -x $PFLOGSUMM ]] || die "pflogsumm is not installed: apt-get install pflogsumm libdate-calc-perl"
command -v sqlite3 >/dev/null || die "sqlite3 is not installed: apt-get install sqlite3"
[[ -x /usr/bin/time ]] || die "GNU time is needed: apt-get install time"
PIN=()
taskset -c "$BENCH_CPU" true 2>/dev/null && PIN=(taskset -c "$BENCH_CPU")

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    say "== building: cargo build --release -p mailwarden"
    (cd "$ROOT" && cargo build --release -p mailwarden)
fi
[[ -x $MW ]] || die "no release binary at $MW"

mkdir -p "$DATA"
RFC10=$DATA/mail.10x.log
CLS10=$DATA/mail.classic.10x.log
BIG=$DATA/mail.150x.log
[[ -s $RFC10 ]] || { gzip -dc "$RFC_GZ" | perl "$BENCH/mkbig.pl" --copies 10 --shift-days 3 /dev/stdin >"$RFC10"; }
[[ -s $CLS10 ]] || { gzip -dc "$CLASSIC_GZ" | perl "$BENCH/mkbig.pl" --copies 10 --shift-days 3 /dev/stdin >"$CLS10"; }
N10=$(wc -l <"$RFC10")
say "   lines: 10x $N10"

# secs CMD... : wall seconds of CMD (pinned). Output goes to a file, not
# /dev/null: GNU grep stops at the first match when its output is /dev/null.
secs() {
    local t0 t1
    t0=$EPOCHREALTIME
    "${PIN[@]}" "$@" >"$DATA/out.txt" 2>"$DATA/err.txt" || { cat "$DATA/err.txt" >&2; return 1; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
min() { awk 'NR == 1 || $1 < m { m = $1 } END { print m }'; }

say "== ingest, best of $RUNS"
TMP=$(mktemp -d "$DATA/store.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ingest_t=$(for ((i = 0; i < RUNS; i++)); do
    rm -rf "$TMP/d"
    secs "$MW" ingest --data-dir "$TMP/d" "$RFC10"
done | min)
store_bytes=$(du -sb "$TMP/d" | cut -f1)
stored=$("$MW" status --json --data-dir "$TMP/d" | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{store}{lines}')
[[ $stored -eq $N10 ]] || die "the store holds $stored lines, the file $N10" 1
pf_t=$(for ((i = 0; i < RUNS; i++)); do secs "$PFLOGSUMM" --smtpd-stats --detail 10 "$CLS10"; done | min)
sq_t=$(for ((i = 0; i < RUNS; i++)); do
    rm -f "$TMP/import.db"
    secs sqlite3 "$TMP/import.db" 'PRAGMA journal_mode=WAL;' 'CREATE TABLE l(line TEXT);' \
        '.mode ascii' '.separator "\037" "\n"' ".import $RFC10 l"
done | min)
sq_rows=$(sqlite3 "$TMP/import.db" 'select count(*) from l')
[[ $sq_rows -eq $N10 ]] || die "sqlite3 imported $sq_rows rows, expected $N10" 1

BIGSTORE=$DATA/store.150x
NBIG=$((15 * N10))
stored_in() { "$MW" status --json --data-dir "$1" 2>/dev/null | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{store}{lines} // 0' || echo 0; }
if [[ $(stored_in "$BIGSTORE") -ne $NBIG ]]; then
    say "== building a store of $NBIG events (15 shifted copies of the 10x log)"
    rm -rf "$BIGSTORE"
    (cd "$ROOT" && cargo run --release -q -p mailwarden-store --example ingest_bench -- \
        "$RFC10" --repeat 15 --shift-days 30 --dir "$BIGSTORE" >&2)
fi
[[ $(stored_in "$BIGSTORE") -eq $NBIG ]] || die "the big store does not hold $NBIG lines" 1
[[ -s $BIG && $(wc -l <"$BIG") -eq $NBIG ]] || "$MW" logs parse --store --raw --data-dir "$BIGSTORE" >"$BIG"
say "== search over $NBIG stored events"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$TMP" "$BIGSTORE" "$BIG"' EXIT
hits=$("$MW" logs search --store --data-dir "$BIGSTORE" --sender "$SENDER" --json | wc -l)
search_t=$(for ((i = 0; i < RUNS; i++)); do
    secs "$MW" logs search --store --data-dir "$BIGSTORE" --sender "$SENDER" --json
done | min)
inv_t=$(for ((i = 0; i < RUNS; i++)); do
    secs "$MW" investigate --store --data-dir "$BIGSTORE" --sender "$SENDER" --since 2023-01-01 --until 2025-01-01 --json
done | min)
grep_hits=$(grep -c -F "$SENDER" "$BIG" || true)
grep_t=$(for ((i = 0; i < RUNS; i++)); do secs grep -c -F "$SENDER" "$BIG"; done | min)

rev=$(git -C "$ROOT" rev-parse --short HEAD)
awk -v n="$N10" -v it="$ingest_t" -v pf="$pf_t" -v sq="$sq_t" -v b="$store_bytes" \
    -v nb="$NBIG" -v st="$search_t" -v h="$hits" -v gt="$grep_t" -v gh="$grep_hits" \
    -v rev="$rev" -v runs="$RUNS" -v sender="$SENDER" -v iv="$inv_t" 'BEGIN {
    printf "store.sh at %s, best of %d\n", rev, runs
    printf "ingest %d lines:   mailwarden %.2f s = %.0f events/s, %.0f store bytes/event\n", n, it, n / it, b / n
    printf "  anchor pflogsumm:     %.2f s = %.0f lines/s  (mailwarden ingest is %.2fx its speed)\n", pf, n / pf, pf / it
    printf "  anchor sqlite3 import: %.2f s = %.0f lines/s (mailwarden ingest is %.2fx its speed)\n", sq, n / sq, sq / it
    printf "search --store --sender %s over %d events: %.3f s, %d messages\n", sender, nb, st, h
    printf "  anchor grep -c -F:    %.3f s, %d lines  (mailwarden search is %.1fx faster)\n", gt, gh, gt / st
    printf "investigate --store --sender %s over %d events: %.3f s (%.1fx faster than the grep anchor)\n", sender, nb, iv, gt / iv
}'
