#!/usr/bin/env bash
# bench/logs.sh - throughput and memory of `mailwarden logs`, against pflogsumm.
#
#   bench/logs.sh                    build, prepare data, measure, print a table
#   SKIP_BUILD=1 bench/logs.sh       use the existing release binary
#   CORPUS=/path/to/corpus bench/logs.sh
#
# What it does (see bench/README.md for how to read the numbers):
#   1. checks the prerequisites (corpus, pflogsumm, GNU time, perl, cargo);
#   2. builds `cargo build --release -p mailwarden` (unless SKIP_BUILD=1);
#   3. prepares bench/data/ (gitignored): the corpus log decompressed (1x, in
#      RFC 3339 and in classic `Mmm dd HH:MM:SS` framing) and 10x versions made
#      by bench/mkbig.pl (10 copies, each 3 days later, queue ids made unique),
#      and checks them: exactly 10x the lines, no unparsed line, 10x the messages;
#   4. measures, for 1x and 10x, best of $RUNS runs each, pinned to one core:
#        a. mailwarden logs parse --count   (parse + stitch, lines/s it reports)
#        b. mailwarden logs summary FILE    (wall time, peak RSS)
#        c. pflogsumm --smtpd-stats --detail 10 CLASSIC_FILE  (wall time, peak RSS)
#   5. prints a table and writes the same figures to bench/data/results.json.
#
# Environment:
#   CORPUS      the public corpus (default: ../shared/corpus beside the checkout)
#   SKIP_BUILD  1 = do not run cargo build
#   RUNS        runs per measurement, the best is kept (default 5)
#   BENCH_CPU   the core to pin to with taskset (default 0)
#   PFLOGSUMM   the pflogsumm to run (default: pflogsumm on PATH, else /usr/sbin/pflogsumm)
#
# Exit status: 0 done, 1 a check of the generated data failed, 2 missing prerequisite.

set -euo pipefail
export LC_ALL=C # "." as decimal separator in $EPOCHREALTIME, printf and awk

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DATA=$BENCH/data
CORPUS=${CORPUS:-$(cd "$ROOT/.." && pwd)/shared/corpus}
RUNS=${RUNS:-5}
BENCH_CPU=${BENCH_CPU:-0}

# The corpus log covers 3 whole days (2023-03-14 .. 2023-03-16); 10 copies
# shifted by 3 days each cover 30 consecutive days.
SCALE=10
SHIFT_DAYS=3
RFC_GZ=$CORPUS/logs/postfix-production/test/mail.log.gz
CLASSIC_GZ=$CORPUS/logs/postfix-production/derived/mail.classic.log.gz
PFLOGSUMM_ARGS=(--smtpd-stats --detail 10)

# The release binary: cargo's default target dir, or $CARGO_TARGET_DIR when set
# (a relative one is relative to the workspace, where cargo is run).
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
MW=$TARGET_DIR/release/mailwarden

say() { printf '%s\n' "$*" >&2; }
die() { say "logs.sh: $1"; exit "${2:-2}"; }

# ---------------------------------------------------------------- 1. prerequisites
[[ -r $RFC_GZ && -r $CLASSIC_GZ ]] ||
    die "the benchmark needs ../shared/corpus (the public corpus beside the checkout).
  Looked for:  $RFC_GZ
          and  $CLASSIC_GZ
  Put the corpus there, or point CORPUS=/path/to/corpus at a copy of it."

PFLOGSUMM=${PFLOGSUMM:-$(command -v pflogsumm || echo /usr/sbin/pflogsumm)}
[[ -x $PFLOGSUMM ]] ||
    die "pflogsumm (the reference, version 1.1.5) is not installed: apt-get install pflogsumm"
perl -MDate::Calc -e 1 2>/dev/null ||
    die "pflogsumm --smtpd-stats needs the Perl module Date::Calc: apt-get install libdate-calc-perl"
[[ -x /usr/bin/time ]] && /usr/bin/time --version 2>&1 | grep -q GNU ||
    die "GNU time is needed at /usr/bin/time (for wall time and peak RSS): apt-get install time"
command -v perl >/dev/null || die "perl is needed (bench/mkbig.pl, pflogsumm): apt-get install perl"
perl -MJSON::PP -e 1 2>/dev/null || die "the Perl module JSON::PP is needed: apt-get install perl"
command -v gzip >/dev/null || die "gzip is needed: apt-get install gzip"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is needed to build mailwarden (https://rustup.rs), or set SKIP_BUILD=1"
fi

PIN=()
if command -v taskset >/dev/null; then
    if taskset -c "$BENCH_CPU" true 2>/dev/null; then
        PIN=(taskset -c "$BENCH_CPU")
    else
        say "logs.sh: warning: cannot pin to core $BENCH_CPU (set BENCH_CPU); running unpinned"
    fi
else
    say "logs.sh: warning: taskset not found (package util-linux); running unpinned"
fi

# ---------------------------------------------------------------- 2. build
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    say "== building: cargo build --release -p mailwarden"
    (cd "$ROOT" && cargo build --release -p mailwarden)
fi
[[ -x $MW ]] || die "no release binary at $MW; build it: cargo build --release -p mailwarden"

# ---------------------------------------------------------------- 3. data
mkdir -p "$DATA"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 &&
    ! git -C "$ROOT" check-ignore -q "$DATA/results.json"; then
    say "logs.sh: warning: bench/data/ is not gitignored; add /bench/data to .gitignore"
fi

# stale OUT DEP... : true when OUT is missing or older than a DEP.
stale() {
    local out=$1 dep
    shift
    [[ -s $out ]] || return 0
    for dep in "$@"; do [[ $dep -nt $out ]] && return 0; done
    return 1
}

RFC1=$DATA/mail.1x.log
CLS1=$DATA/mail.classic.1x.log
RFC10=$DATA/mail.${SCALE}x.log
CLS10=$DATA/mail.classic.${SCALE}x.log

say "== preparing data in $DATA"
if stale "$RFC1" "$RFC_GZ"; then gzip -dc "$RFC_GZ" >"$RFC1.tmp" && mv "$RFC1.tmp" "$RFC1"; fi
if stale "$CLS1" "$CLASSIC_GZ"; then gzip -dc "$CLASSIC_GZ" >"$CLS1.tmp" && mv "$CLS1.tmp" "$CLS1"; fi
for pair in "$RFC1:$RFC10" "$CLS1:$CLS10"; do
    in=${pair%%:*} out=${pair#*:}
    if stale "$out" "$in" "$BENCH/mkbig.pl"; then
        say "   $(basename "$out"): $SCALE copies of $(basename "$in"), each $SHIFT_DAYS days later"
        perl "$BENCH/mkbig.pl" --copies "$SCALE" --shift-days "$SHIFT_DAYS" "$in" >"$out.tmp"
        mv "$out.tmp" "$out"
    fi
done

count_lines() { wc -l <"$1" | tr -d ' '; }
N1=$(count_lines "$RFC1")
N10=$(count_lines "$RFC10")
[[ $(count_lines "$CLS1") -eq $N1 ]] || die "$CLS1 and $RFC1 differ in line count" 1
for f in "$RFC10" "$CLS10"; do
    n=$(count_lines "$f")
    [[ $n -eq $((SCALE * N1)) ]] || die "$f has $n lines, expected $SCALE x $N1 = $((SCALE * N1))" 1
done
say "   lines: 1x $N1, ${SCALE}x $N10 (= $SCALE x $N1) in both framings"
say "   time span 1x:  $(head -c 10 "$RFC1") .. $(tail -n 1 "$RFC1" | head -c 10)"
say "   time span ${SCALE}x: $(head -c 10 "$RFC10") .. $(tail -n 1 "$RFC10" | head -c 10)" \
    "(classic: $(head -c 6 "$CLS10") .. $(tail -n 1 "$CLS10" | head -c 6))"

# count_json FILE: "lines messages unparsed lines_per_sec" from `logs parse --count`.
count_json() {
    perl -MJSON::PP -0777 -ne '
        my $d = decode_json($_); my $u = 0; $u += $_ for values %{ $d->{unparsed_by_reason} };
        print join(" ", $d->{lines}, $d->{messages}, $u, $d->{lines_per_sec}), "\n";' "$1"
}
parse_count() { # FILE -> count_json of one pinned run
    local out=$DATA/parse.json
    "${PIN[@]}" "$MW" logs parse --count --no-progress "$1" >"$out" ||
        die "mailwarden logs parse --count $1 failed" 1
    count_json "$out"
}
out=$(parse_count "$RFC1")
read -r _ MSG1 UNP1 _ <<<"$out"
out=$(parse_count "$RFC10")
read -r _ MSG10 UNP10 _ <<<"$out"
say "   mailwarden logs parse --count:  1x $MSG1 messages, $UNP1 unparsed lines;" \
    "${SCALE}x $MSG10 messages, $UNP10 unparsed lines"
[[ $UNP10 -eq 0 ]] || die "the ${SCALE}x log has $UNP10 unparsed lines (see: $MW logs parse --unparsed $RFC10)" 1
[[ $MSG10 -eq $((SCALE * MSG1)) ]] ||
    die "the ${SCALE}x log stitches into $MSG10 messages, expected $SCALE x $MSG1 = $((SCALE * MSG1))" 1

# ---------------------------------------------------------------- 4. measure
# timed ERRFILE CMD... : runs CMD pinned, under GNU time, with its output
# discarded (stdout to /dev/null, stderr to ERRFILE), and prints "WALL RSS_KIB":
# WALL in seconds from $EPOCHREALTIME (microsecond resolution; GNU time's %e has
# only 10 ms, too coarse for the 1x runs; it includes starting GNU time and
# taskset, about a millisecond) and the peak resident set size from GNU time's %M.
timed() {
    local err=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %M' -o "$DATA/time.txt" "${PIN[@]}" "$@" >/dev/null 2>"$err" || return
    t1=$EPOCHREALTIME
    # The last line of time.txt holds "%e %M" (GNU time may put a status line before it).
    awk -v t0="$t0" -v t1="$t1" 'END { printf "%.6f %d\n", t1 - t0, $2 }' "$DATA/time.txt"
}

# best_of ERRFILE CMD... : the lowest wall time and the highest peak RSS over $RUNS runs.
best_of() {
    local i out wall rss best="" maxrss=0
    for ((i = 0; i < RUNS; i++)); do
        out=$(timed "$@") || return
        read -r wall rss <<<"$out"
        if [[ -z $best ]] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$wall; fi
        if ((rss > maxrss)); then maxrss=$rss; fi
    done
    echo "$best $maxrss"
}

RESULTS=()
for scale in 1 "$SCALE"; do
    if ((scale == 1)); then
        rfc=$RFC1 cls=$CLS1 lines=$N1 msgs=$MSG1
    else
        rfc=$RFC10 cls=$CLS10 lines=$N10 msgs=$MSG10
    fi
    say "== measuring ${scale}x ($lines lines), best of $RUNS${PIN:+, pinned to core $BENCH_CPU}"

    # a. parse + stitch: the lines/s that `logs parse --count` reports itself
    #    (its clock covers reading, framing, parsing and stitching, not process start).
    best_parse=0
    for ((i = 0; i < RUNS; i++)); do
        out=$(parse_count "$rfc")
        read -r _ _ _ lps <<<"$out"
        if awk -v a="$lps" -v b="$best_parse" 'BEGIN { exit !(a > b) }'; then best_parse=$lps; fi
    done
    say "   mailwarden logs parse --count:  $(printf '%.0f' "$best_parse") lines/s"

    # b. the full report, as a user runs it.
    out=$(best_of "$DATA/stderr.txt" "$MW" logs summary --no-progress "$rfc") ||
        die "mailwarden logs summary $rfc failed: $(cat "$DATA/stderr.txt")" 1
    read -r mw_wall mw_rss <<<"$out"
    say "   mailwarden logs summary:        ${mw_wall} s, peak RSS ${mw_rss} KiB"

    # c. the reference, on the same log in the framing it reads (warnings discarded).
    out=$(best_of /dev/null "$PFLOGSUMM" "${PFLOGSUMM_ARGS[@]}" "$cls") ||
        die "pflogsumm failed on $cls; run it by hand: $PFLOGSUMM ${PFLOGSUMM_ARGS[*]} $cls" 1
    read -r pf_wall pf_rss <<<"$out"
    say "   pflogsumm ${PFLOGSUMM_ARGS[*]}: ${pf_wall} s, peak RSS ${pf_rss} KiB"

    RESULTS+=("$scale $lines $msgs $(stat -c %s "$rfc") $(stat -c %s "$cls") $best_parse $mw_wall $mw_rss $pf_wall $pf_rss")
done
rm -f "$DATA/time.txt" "$DATA/parse.json" "$DATA/stderr.txt"

# ---------------------------------------------------------------- 5. report
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || GIT_REV="$GIT_REV+dirty"
export GIT_REV PFLOGSUMM RUNS CORPUS
MW_VERSION=$("$MW" --version)
PF_VERSION=$("$PFLOGSUMM" --version 2>/dev/null | head -n 1 || true)
PF_ARGS="${PFLOGSUMM_ARGS[*]}"
PINNED=${PIN:+$BENCH_CPU}
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
export MW_VERSION PF_VERSION PF_ARGS PINNED CPU_MODEL

printf '%s\n' "${RESULTS[@]}" | perl -MJSON::PP -MPOSIX=strftime -e '
    use strict; use warnings;
    my @rows;
    while (<STDIN>) {
        my ($scale, $lines, $msgs, $rfc_bytes, $cls_bytes, $parse, $mw_wall, $mw_rss, $pf_wall, $pf_rss) = split;
        push @rows, {
            scale => $scale + 0, lines => $lines + 0, messages => $msgs + 0,
            bytes => { rfc3339 => $rfc_bytes + 0, classic => $cls_bytes + 0 },
            mailwarden => {
                parse_stitch_lines_per_sec => $parse + 0,
                summary_wall_secs => $mw_wall + 0,
                summary_lines_per_sec => $lines / $mw_wall,
                summary_peak_rss_kib => $mw_rss + 0,
            },
            pflogsumm => {
                wall_secs => $pf_wall + 0,
                lines_per_sec => $lines / $pf_wall,
                peak_rss_kib => $pf_rss + 0,
            },
            summary_vs_pflogsumm_speed => $pf_wall / $mw_wall,
        };
    }
    my ($a, $b) = @rows;
    my $doc = {
        generated_at => POSIX::strftime("%Y-%m-%dT%H:%M:%SZ", gmtime),
        mailwarden => { version => $ENV{MW_VERSION}, git_rev => $ENV{GIT_REV} },
        pflogsumm => { path => $ENV{PFLOGSUMM}, version => $ENV{PF_VERSION}, args => $ENV{PF_ARGS} },
        cpu => $ENV{CPU_MODEL}, pinned_core => length $ENV{PINNED} ? $ENV{PINNED} + 0 : undef,
        runs => $ENV{RUNS} + 0, corpus => $ENV{CORPUS},
        sizes => \@rows,
        rss_growth_1x_to_10x => {
            mailwarden_summary => $b->{mailwarden}{summary_peak_rss_kib} / $a->{mailwarden}{summary_peak_rss_kib},
            pflogsumm => $b->{pflogsumm}{peak_rss_kib} / $a->{pflogsumm}{peak_rss_kib},
        },
    };
    open my $fh, ">", "$ARGV[0]" or die "$ARGV[0]: $!\n";
    print $fh JSON::PP->new->pretty->canonical->encode($doc);
    close $fh;

    # Thousands separators for the table.
    sub n { my $s = sprintf "%.0f", shift; 1 while $s =~ s/^(\d+)(\d{3})/$1,$2/; $s }
    sub mib { sprintf "%.1f MiB", $_[0] / 1024 }
    printf "\n%s (%s) vs %s, best of %d runs%s\n", $ENV{MW_VERSION}, $ENV{GIT_REV},
        $ENV{PF_VERSION}, $ENV{RUNS}, length $ENV{PINNED} ? ", pinned to core $ENV{PINNED}" : ", not pinned";
    my $fmt = "%-5s %9s  %13s  %13s %9s %10s  %13s %9s %10s  %9s\n";
    printf $fmt, "", "", "mailwarden", "mailwarden", "summary", "summary", "pflogsumm", "pflogsumm", "pflogsumm", "summary /";
    printf $fmt, "size", "lines", "parse+stitch", "summary", "wall", "peak RSS", "", "wall", "peak RSS", "pflogsumm";
    printf $fmt, "", "", "lines/s", "lines/s", "", "", "lines/s", "", "", "speed";
    for my $r (@rows) {
        printf $fmt, "$r->{scale}x", n($r->{lines}),
            n($r->{mailwarden}{parse_stitch_lines_per_sec}), n($r->{mailwarden}{summary_lines_per_sec}),
            sprintf("%.3f s", $r->{mailwarden}{summary_wall_secs}), mib($r->{mailwarden}{summary_peak_rss_kib}),
            n($r->{pflogsumm}{lines_per_sec}), sprintf("%.3f s", $r->{pflogsumm}{wall_secs}),
            mib($r->{pflogsumm}{peak_rss_kib}), sprintf("%.1fx", $r->{summary_vs_pflogsumm_speed});
    }
    printf "\npeak RSS growth 1x -> %sx:  mailwarden summary %.2fx (%s -> %s),  pflogsumm %.2fx (%s -> %s)\n",
        $b->{scale},
        $doc->{rss_growth_1x_to_10x}{mailwarden_summary},
        mib($a->{mailwarden}{summary_peak_rss_kib}), mib($b->{mailwarden}{summary_peak_rss_kib}),
        $doc->{rss_growth_1x_to_10x}{pflogsumm},
        mib($a->{pflogsumm}{peak_rss_kib}), mib($b->{pflogsumm}{peak_rss_kib});
    print "results: $ARGV[0]\n";
' "$DATA/results.json"
