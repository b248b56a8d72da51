#!/usr/bin/env bash
# bench/webscan.sh - `mailwarden webscan` beside yara on the same trees, in
# the same run: throughput (files/s, MB/s), verdict counts per tree, and the
# detection rate on the malicious collection.
#
#   bench/webscan.sh                               build (release), measure, print the table
#   SKIP_BUILD=1 bench/webscan.sh                  use the existing target/release/mailwarden
#   MAILWARDEN=target/debug/mailwarden TREES=/some/tree bench/webscan.sh   quick check of the script
#   CORPUS=/path/to/corpus bench/webscan.sh
#
# What it does (bench/webscan.md explains the figures and holds the last run):
#   1. checks the prerequisites (corpus, yara, jq, the rule file, cargo);
#   2. builds `cargo build --release -p mailwarden` (unless SKIP_BUILD=1 or
#      MAILWARDEN is set);
#   3. per tree (the three benign trees and the malicious collection of
#      $CORPUS/webshell, or TREES): counts its regular files and bytes;
#      times, $RUNS runs each after one warm-up run (page cache warm for both),
#        a. mailwarden webscan --json --no-progress --threads $THREADS DIR >/dev/null
#        b. yara -r -p $THREADS bench/webscan/rules.yar DIR >/dev/null
#      with hyperfine when installed (median), else a loop of `date +%s.%N`
#      (median); prints files, MB, seconds, files/s and MB/s for both and
#      the ratio (mailwarden's files/s over yara's);
#   4. runs mailwarden once more per tree for its verdict counts
#      (malicious/suspicious/info, from the JSON summary record) and yara
#      once for the files its rules match; on the malicious collection both
#      become a detection rate.
#
# Environment:
#   CORPUS      the public corpus (default: ../shared/corpus beside the checkout)
#   TREES       space-separated directories to measure instead of the default four
#   MAILWARDEN  the binary to measure (default: target/release/mailwarden, built)
#   SKIP_BUILD  1 = do not run cargo build
#   RUNS        timed runs per tool and tree (default 5)
#   THREADS     worker threads for both tools (default 2)
#   RULES       yara rule file (default bench/webscan/rules.yar)
#   NO_HYPERFINE  1 = time with the date loop even when hyperfine is installed
#
# Exit status: 0 done, 1 a run failed, 2 missing prerequisite.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS=${CORPUS:-$(cd "$ROOT/.." && pwd)/shared/corpus}
WEBSHELL=$CORPUS/webshell
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
RULES=${RULES:-$ROOT/bench/webscan/rules.yar}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR

say() { printf '%s\n' "$*" >&2; }
die() { say "webscan.sh: $1"; exit "${2:-2}"; }

# ---------------------------------------------------------------- 1. prerequisites
if [[ -n ${TREES:-} ]]; then
    read -r -a TREE_LIST <<<"$TREES"
else
    [[ -d $WEBSHELL/benign && -d $WEBSHELL/malicious ]] ||
        die "the benchmark needs ../shared/corpus/webshell (the public corpus beside the checkout).
  Looked for:  $WEBSHELL/{benign,malicious}
  Put the corpus there, point CORPUS=/path/to/corpus at a copy, or name trees with TREES=..."
    TREE_LIST=("$WEBSHELL"/benign/mailcow-dockerized "$WEBSHELL"/benign/roundcubemail
        "$WEBSHELL"/benign/wordpress-core "$WEBSHELL"/malicious)
fi
for t in "${TREE_LIST[@]}"; do
    [[ -d $t ]] || die "not a directory: $t"
done
command -v yara >/dev/null || die "yara is needed (the comparison): apt-get install yara"
command -v jq >/dev/null || die "jq is needed (to read the JSON summary): apt-get install jq"
[[ -f $RULES ]] || die "the yara rule file is missing: $RULES (set RULES=... to use another)"
yara "$RULES" /dev/null >/dev/null 2>&1 || die "yara cannot compile $RULES: run \`yara $RULES /dev/null\` to see why"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not $RUNS"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive number, not $THREADS"

# ---------------------------------------------------------------- 2. build
if [[ -n ${MAILWARDEN:-} ]]; then
    [[ $MAILWARDEN == /* ]] || MAILWARDEN=$ROOT/$MAILWARDEN
elif [[ ${SKIP_BUILD:-0} == 1 ]]; then
    MAILWARDEN=$TARGET_DIR/release/mailwarden
else
    command -v cargo >/dev/null || die "cargo is needed to build mailwarden (https://rustup.rs), or set SKIP_BUILD=1 / MAILWARDEN=..."
    say "webscan.sh: cargo build --release -p mailwarden"
    (cd "$ROOT" && cargo build --release -q -p mailwarden) || die "the build failed" 1
    MAILWARDEN=$TARGET_DIR/release/mailwarden
fi
[[ -x $MAILWARDEN ]] || die "no mailwarden binary at $MAILWARDEN (build it, or set MAILWARDEN=...)"

HYPERFINE=0
[[ ${NO_HYPERFINE:-0} != 1 ]] && command -v hyperfine >/dev/null && HYPERFINE=1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Both tools exit non-zero on findings (mailwarden 1, yara never on
# matches); a status of 2 or more from mailwarden is a real failure.
mw() { "$MAILWARDEN" webscan --json --no-progress --threads "$THREADS" "$1" >"$2" || [[ $? == 1 ]]; }
ya() { yara -r -p "$THREADS" "$RULES" "$1" >"$2" 2>/dev/null; }

# Median wall seconds of $RUNS runs (after one warm-up): hyperfine runs the
# command line $3 without a shell (output discarded); the loop calls the
# shell function $1 on the directory $2.
time_runs() {
    local fn=$1 dir=$2
    if [[ $HYPERFINE == 1 ]]; then
        # -i: mailwarden exits 1 on findings; real failures were ruled out
        # by the checked run before.
        hyperfine -N -i -w 1 -r "$RUNS" --export-json "$TMP/h.json" "$3" >/dev/null 2>&1 ||
            die "hyperfine failed on: $3" 1
        jq -r '.results[0].median' "$TMP/h.json"
    else
        "$fn" "$dir" /dev/null
        local i t0 t1 all=()
        for ((i = 0; i < RUNS; i++)); do
            t0=$(date +%s.%N)
            "$fn" "$dir" /dev/null
            t1=$(date +%s.%N)
            all+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
        done
        printf '%s\n' "${all[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
    fi
}

say "webscan.sh: $MAILWARDEN against yara $(yara --version), $RUNS runs each, $THREADS threads, $([[ $HYPERFINE == 1 ]] && echo hyperfine || echo date loop)"
printf '\n%-22s %7s %7s | %9s %9s %8s | %9s %9s %8s | %6s\n' \
    tree files MB "mw s" "mw f/s" "mw MB/s" "yara s" "yara f/s" "yara MB/s" ratio
VERDICTS=()
for dir in "${TREE_LIST[@]}"; do
    name=$(basename "$dir")
    files=$(find "$dir" -type f | wc -l)
    bytes=$(find "$dir" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    # One checked run each first: a failing tool must not be timed.
    mw "$dir" "$TMP/mw.json" || die "mailwarden failed on $dir" 1
    ya "$dir" "$TMP/yara.out" || die "yara failed on $dir" 1
    q=$(printf '%q' "$dir")
    mw_s=$(time_runs mw "$dir" "$MAILWARDEN webscan --json --no-progress --threads $THREADS $q")
    ya_s=$(time_runs ya "$dir" "yara -r -p $THREADS $(printf '%q' "$RULES") $q")
    awk -v n="$name" -v f="$files" -v b="$bytes" -v m="$mw_s" -v y="$ya_s" 'BEGIN {
        printf "%-22s %7d %7.1f | %9.3f %9.0f %8.1f | %9.3f %9.0f %8.1f | %6.2f\n",
            n, f, b / 1e6, m, f / m, b / 1e6 / m, y, f / y, b / 1e6 / y, y / m }'
    sum=$(grep '"type":"summary"' "$TMP/mw.json")
    read -r mal sus inf scanned < <(jq -r '"\(.malicious) \(.suspicious) \(.info) \(.files_scanned)"' <<<"$sum")
    yfiles=$(awk '{ $1 = ""; sub(/^ /, ""); print }' "$TMP/yara.out" | sort -u | wc -l)
    VERDICTS+=("$(printf '%-22s %7d | %9d %10d %6d | %10d' "$name" "$scanned" "$mal" "$sus" "$inf" "$yfiles")")
    if [[ $dir == "$WEBSHELL/malicious" || $name == malicious ]]; then
        DETECT=$(awk -v m="$mal" -v s="$sus" -v n="$scanned" -v y="$yfiles" -v f="$files" 'BEGIN {
            printf "detection on %s: mailwarden malicious %d/%d (%.1f%%), malicious or suspicious %d/%d (%.1f%%); yara %d/%d (%.1f%%)",
                "malicious", m, n, 100 * m / n, m + s, n, 100 * (m + s) / n, y, f, 100 * y / f }')
    fi
done
printf '\n%-22s %7s | %9s %10s %6s | %10s\n' tree scanned malicious suspicious info "yara files"
printf '%s\n' "${VERDICTS[@]}"
[[ -n ${DETECT:-} ]] && printf '\n%s\n' "$DETECT"
printf '\nratio = yara seconds / mailwarden seconds (above 1: mailwarden is faster)\n'
