#!/usr/bin/env bash
# bench/dmarc.sh - `mailwarden dmarc` against parsedmarc: does each public
# sample report read the same, and how fast are both.
#
#   bench/dmarc.sh                   build, prepare data, compare, measure, print tables
#   SKIP_BUILD=1 bench/dmarc.sh      use the existing release binary
#   CORPUS=/path/to/corpus bench/dmarc.sh
#
# What it does (bench/dmarc.md explains the figures and holds the last run):
#   1. checks the prerequisites (corpus, python3 with venv, GNU time, cargo);
#   2. installs parsedmarc $PARSEDMARC_VERSION into bench/.venv (gitignored)
#      unless it is there;
#   3. builds `cargo build --release -p mailwarden` (unless SKIP_BUILD=1);
#   4. generates bench/data/dmarc/ (gitignored, deterministic): 1,000
#      aggregate reports of 5..60 records (70% .xml, 20% .xml.gz, 10% .zip)
#      and one report of 100,000 records (.xml, about 60 MB);
#   5. conformance: every file of the parsedmarc samples through both tools;
#      per file, does each parse it, and do report id, domain, record count,
#      and per record source IP, count, disposition, aligned DKIM/SPF and
#      header_from agree (TLS: policy domain and session counts);
#   6. throughput, best of $RUNS runs each, in the same run: the sample set,
#      the 1,000 reports and the 100k-record report with
#        a. mailwarden dmarc --json DIR >/dev/null   (whole process: wall time, peak RSS)
#        b. parsedmarc.parse_report_file(offline=True) over the same files
#           (parse time after import, so interpreter start-up is not counted;
#           wall time and peak RSS of the process);
#      and prints files/s, records/s and the ratio; the figures also go to
#      bench/data/dmarc/results.json.
#
# Environment:
#   CORPUS      the public corpus (default: ../shared/corpus beside the checkout)
#   SKIP_BUILD  1 = do not run cargo build
#   RUNS        runs per measurement, the best is kept (default 3)
#   BENCH_CPU   the core to pin to with taskset (default 0)
#
# Exit status: 0 done, 1 a conformance difference or a check failed, 2 missing prerequisite.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DATA=$BENCH/data/dmarc
CORPUS=${CORPUS:-$(cd "$ROOT/.." && pwd)/shared/corpus}
SAMPLES=$CORPUS/auth/parsedmarc-samples
RUNS=${RUNS:-3}
BENCH_CPU=${BENCH_CPU:-0}
PARSEDMARC_VERSION=11.1.0
VENV=$BENCH/.venv
PY=$VENV/bin/python

TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
MW=$TARGET_DIR/release/mailwarden

say() { printf '%s\n' "$*" >&2; }
die() { say "dmarc.sh: $1"; exit "${2:-2}"; }

# ---------------------------------------------------------------- 1. prerequisites
[[ -d $SAMPLES ]] ||
    die "the benchmark needs ../shared/corpus (the public corpus beside the checkout).
  Looked for:  $SAMPLES
  Put the corpus there, or point CORPUS=/path/to/corpus at a copy of it."
command -v python3 >/dev/null || die "python3 is needed: apt-get install python3 python3-venv"
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3's venv module is needed: apt-get install python3-venv"
[[ -x /usr/bin/time ]] && /usr/bin/time --version 2>&1 | grep -q GNU ||
    die "GNU time is needed at /usr/bin/time (for wall time and peak RSS): apt-get install time"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is needed to build mailwarden (https://rustup.rs), or set SKIP_BUILD=1"
fi
PIN=()
if command -v taskset >/dev/null && taskset -c "$BENCH_CPU" true 2>/dev/null; then
    PIN=(taskset -c "$BENCH_CPU")
else
    say "dmarc.sh: warning: cannot pin to core $BENCH_CPU (taskset, BENCH_CPU); running unpinned"
fi

# ---------------------------------------------------------------- 2. parsedmarc
if ! "$PY" -c 'import parsedmarc' 2>/dev/null ||
    [[ $("$PY" -c 'import importlib.metadata as m; print(m.version("parsedmarc"))') != "$PARSEDMARC_VERSION" ]]; then
    say "== installing parsedmarc $PARSEDMARC_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "parsedmarc==$PARSEDMARC_VERSION" ||
        die "pip could not install parsedmarc $PARSEDMARC_VERSION (needs PyPI)"
fi
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 && ! git -C "$ROOT" check-ignore -q "$VENV"; then
    say "dmarc.sh: warning: bench/.venv is not gitignored; add /bench/.venv to .gitignore"
fi

# ---------------------------------------------------------------- 3. build
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    say "== building: cargo build --release -p mailwarden"
    (cd "$ROOT" && cargo build --release -p mailwarden)
fi
[[ -x $MW ]] || die "no release binary at $MW; build it: cargo build --release -p mailwarden"

# ---------------------------------------------------------------- 4. data
mkdir -p "$DATA"
cat >"$DATA/gen.py" <<'PY'
"""Deterministic DMARC aggregate reports for the benchmark."""
import gzip, io, os, random, sys, zipfile

def report(rng, org, rid, domain, begin, n):
    out = io.StringIO()
    w = out.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n  <version>1.0</version>\n')
    w(f'  <report_metadata>\n    <org_name>{org}</org_name>\n    <email>noreply-dmarc@{org}</email>\n')
    w(f'    <report_id>{rid}</report_id>\n    <date_range>\n      <begin>{begin}</begin>\n      <end>{begin + 86399}</end>\n    </date_range>\n  </report_metadata>\n')
    w(f'  <policy_published>\n    <domain>{domain}</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>quarantine</p>\n    <sp>quarantine</sp>\n    <pct>100</pct>\n  </policy_published>\n')
    for _ in range(n):
        a = rng.randrange(1, 224)
        ip = f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        good = rng.random() < 0.8
        dkim = "pass" if good else "fail"
        spf = "pass" if good and rng.random() < 0.9 else "fail"
        disp = "none" if good else rng.choice(["none", "quarantine", "reject"])
        count = rng.randrange(1, 500)
        w(f'  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{count}</count>\n')
        w(f'      <policy_evaluated>\n        <disposition>{disp}</disposition>\n        <dkim>{dkim}</dkim>\n        <spf>{spf}</spf>\n      </policy_evaluated>\n    </row>\n')
        w(f'    <identifiers>\n      <envelope_from>{domain}</envelope_from>\n      <header_from>{domain}</header_from>\n    </identifiers>\n')
        w(f'    <auth_results>\n      <dkim>\n        <domain>{domain}</domain>\n        <selector>s{rng.randrange(3)}</selector>\n        <result>{dkim}</result>\n      </dkim>\n')
        w(f'      <spf>\n        <domain>{domain}</domain>\n        <scope>mfrom</scope>\n        <result>{spf}</result>\n      </spf>\n    </auth_results>\n  </record>\n')
    w('</feedback>\n')
    return out.getvalue().encode()

def main(out):
    rng = random.Random(20240501)
    many = os.path.join(out, "many")
    os.makedirs(many, exist_ok=True)
    orgs = ["google.com", "outlook.com", "yahoo.com", "mail.ru", "comcast.net", "fastmail.com"]
    domains = ["example.com", "example.org", "example.net"]
    records = 0
    for i in range(1000):
        org = orgs[i % len(orgs)]
        n = rng.randrange(5, 61)
        records += n
        data = report(rng, org, f"{org}-{i:05d}", domains[i % 3], 1714521600 + 86400 * (i // 30), n)
        base = os.path.join(many, f"{org}!{domains[i % 3]}!{i:05d}")
        kind = rng.random()
        if kind < 0.7:
            open(base + ".xml", "wb").write(data)
        elif kind < 0.9:
            open(base + ".xml.gz", "wb").write(gzip.compress(data, 6))
        else:
            with zipfile.ZipFile(base + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr(os.path.basename(base) + ".xml", data)
    big_dir = os.path.join(out, "big")
    os.makedirs(big_dir, exist_ok=True)
    open(os.path.join(big_dir, "big-100k.xml"), "wb").write(
        report(rng, "bigreporter.example", "big-1", "example.com", 1714521600, 100_000))
    open(os.path.join(out, "counts.txt"), "w").write(f"many_files 1000\nmany_records {records}\nbig_records 100000\n")

main(sys.argv[1])
PY
if [[ ! -s $DATA/counts.txt || $DATA/gen.py -nt $DATA/counts.txt ]]; then
    say "== generating reports in $DATA"
    rm -rf "$DATA/many" "$DATA/big"
    python3 "$DATA/gen.py" "$DATA"
fi
MANY_RECORDS=$(awk '$1=="many_records"{print $2}' "$DATA/counts.txt")
say "   1000 reports with $MANY_RECORDS records in $DATA/many; 100000 records in $DATA/big/big-100k.xml ($(du -h "$DATA/big/big-100k.xml" | cut -f1))"

cat >"$DATA/pm.py" <<'PY'
"""parsedmarc over files: per-file summaries (JSON lines) and the parse time."""
import json, logging, os, sys, time
logging.disable(logging.CRITICAL)
import parsedmarc

def summary(path):
    try:
        r = parsedmarc.parse_report_file(path, offline=True, always_use_local_files=True)
    except Exception as e:
        return {"file": path, "error": f"{type(e).__name__}: {e}"[:300]}
    t = r.get("report_type")
    rep = r.get("report")
    if t == "aggregate":
        m, p = rep["report_metadata"], rep["policy_published"]
        return {"file": path, "type": "aggregate", "org": m["org_name"], "report_id": m["report_id"],
                "domain": p["domain"],
                "records": [[x["source"]["ip_address"], x["count"],
                             x["policy_evaluated"]["disposition"], x["policy_evaluated"]["dkim"],
                             x["policy_evaluated"]["spf"], x["identifiers"]["header_from"]]
                            for x in rep["records"]]}
    if t == "smtp_tls":
        return {"file": path, "type": "tls", "report_id": rep["report_id"],
                "policies": [[p["policy_domain"], p["successful_session_count"], p["failed_session_count"]]
                             for p in rep["policies"]]}
    return {"file": path, "type": str(t)}

mode, files = sys.argv[1], sys.argv[2:]
if mode == "list":
    for f in files:
        print(json.dumps(summary(f)))
else:
    t0 = time.perf_counter()
    n = recs = 0
    for f in files:
        s = summary(f)
        n += 1
        recs += len(s.get("records", []))
    print(json.dumps({"files": n, "records": recs, "seconds": time.perf_counter() - t0}))
PY

# ---------------------------------------------------------------- 5. conformance
say "== conformance on $SAMPLES"
mapfile -t SAMPLE_FILES < <(find "$SAMPLES" -type f | sort)
"$PY" "$DATA/pm.py" list "${SAMPLE_FILES[@]}" >"$DATA/parsedmarc.jsonl"
set +e
"$MW" dmarc --json --no-progress "$SAMPLES" >"$DATA/ours.json" 2>"$DATA/ours.stderr"
code=$?
set -e
[[ $code -le 1 ]] || die "mailwarden dmarc failed (exit $code): $(cat "$DATA/ours.stderr")" 1
# Our per-record view of each sample, through CSV (one row per record).
"$MW" dmarc --csv --no-progress "$SAMPLES" >"$DATA/ours.csv" 2>/dev/null || true
if python3 - "$DATA" "$SAMPLES" >"$DATA/conformance.md" <<'PY'
import csv, json, os, sys
data, samples = sys.argv[1], sys.argv[2]
ours = json.load(open(os.path.join(data, "ours.json")))
pm = [json.loads(l) for l in open(os.path.join(data, "parsedmarc.jsonl"))]
rows = list(csv.DictReader(open(os.path.join(data, "ours.csv"))))
def ours_for(path):
    reps = [r for r in ours["reports"] if r["source"] == path or r["source"].startswith(path + ":")]
    return reps
diffs = 0
print("| file | parsedmarc | mailwarden | records / sessions | counts and IPs agree | other fields | our notes |")
print("|---|---|---|---|---|---|---|")
FIELDS = ["source_ip", "count", "disposition", "dkim", "spf", "header_from"]
for p in pm:
    f = p["file"]
    name = os.path.relpath(f, samples)
    reps = ours_for(f)
    failed = [x for x in ours["inputs"]["failed"] if x["input"] == f or x["input"].startswith(f + ":")]
    pm_ok = "error" not in p
    our_ok = bool(reps) and not failed
    agree, detail, other = "yes", "", "same"
    if not pm_ok or not our_ok:
        agree = "n/a" if not pm_ok else "no"
    elif p["type"] == "aggregate":
        r = reps[0]
        mine = [[x["source_ip"], int(x["count"]), x["disposition"], x["dkim"], x["spf"], x["header_from"]]
                for x in rows if x["report_id"] == r["report_id"] and x["domain"] == r["domains"][0]]
        theirs = [[a, b, c, d, e, (g or "").lower()] for a, b, c, d, e, g in p["records"]]
        if [m[:2] for m in mine] != [t[:2] for t in theirs]:
            agree = "no"
            detail = f"records differ: {theirs} vs {mine}"
        if p["report_id"] != r["report_id"] or p["domain"] != r["domains"][0]:
            agree = "no"
            detail = f"id/domain {p['report_id']}/{p['domain']} vs {r['report_id']}/{r['domains'][0]}"
        diffs_f = []
        for m, t in zip(mine, theirs):
            for i in range(2, len(FIELDS)):
                if m[i] != t[i]:
                    diffs_f.append(f"{FIELDS[i]}: parsedmarc {t[i]!r}, ours {m[i]!r}")
        other = "; ".join(diffs_f) or "same"
        detail = detail or f"{len(mine)} record(s), {sum(x[1] for x in mine)} message(s)"
    elif p["type"] == "tls":
        r = reps[0]
        theirs = sum(a + b for _, a, b in p["policies"])
        if theirs != r["messages"] or p["report_id"] != r["report_id"]:
            agree, detail = "no", f"sessions {theirs} vs {r['messages']}"
        else:
            detail = f"{len(p['policies'])} polic(ies), {theirs} session(s)"
    if agree == "no":
        diffs += 1
    notes = "; ".join(n["detail"] for r in reps for n in r["notes"]) or "-"
    print(f"| {name} | {'parsed' if pm_ok else 'error: ' + p['error'][:80]} | "
          f"{'parsed' if our_ok else 'failed: ' + '; '.join(x['reason'] for x in failed)[:80]} | {detail} | {agree} | {other} | {notes} |")
print()
print(f"{len(pm)} files; differences: {diffs}")
sys.exit(1 if diffs else 0)
PY
then conf=0; else conf=1; fi
cat "$DATA/conformance.md"

# ---------------------------------------------------------------- 6. throughput
# measure LABEL CMD... : best wall time and its peak RSS over $RUNS runs.
best_wall=0 best_rss=0
measure() {
    local i wall rss
    best_wall=999999 best_rss=0
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -f '%e %M' -o "$DATA/time.txt" "${PIN[@]}" "$@" >"$DATA/out.txt" 2>"$DATA/err.txt" || true
        read -r wall rss <"$DATA/time.txt"
        if awk -v a="$wall" -v b="$best_wall" 'BEGIN{exit !(a<b)}'; then
            best_wall=$wall best_rss=$rss
            cp "$DATA/out.txt" "$DATA/best-out.txt"
        fi
    done
}

declare -A FILES=([samples]=9 [many]=1000 [big]=1)
declare -A RECS=([samples]=7 [many]=$MANY_RECORDS [big]=100000)
declare -A DIRS=([samples]=$SAMPLES [many]=$DATA/many [big]=$DATA/big)
results="{"
printf '\n%-8s %7s %9s | %-10s %9s %11s %9s %9s | %-10s %9s %11s %9s %9s | %s\n' set files records \
    mailwarden wall_s files/s records/s rss_MiB parsedmarc parse_s files/s records/s rss_MiB ratio
for set in samples many big; do
    dir=${DIRS[$set]}
    # Our record count must be what was generated.
    got=$("$MW" dmarc --json --no-progress "$dir" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["records"])')
    [[ $got -eq ${RECS[$set]} ]] || die "mailwarden read $got records from $set, expected ${RECS[$set]}" 1
    measure "$MW" dmarc --json --no-progress "$dir"
    ow=$best_wall orss=$best_rss
    mapfile -t files < <(find "$dir" -type f | sort)
    measure "$PY" "$DATA/pm.py" time "${files[@]}"
    pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$DATA/best-out.txt")
    prec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$DATA/best-out.txt")
    prss=$best_rss pwall=$best_wall
    [[ $prec -eq ${RECS[$set]} ]] || say "dmarc.sh: warning: parsedmarc read $prec records from $set, expected ${RECS[$set]}"
    line=$(python3 - "$set" "${FILES[$set]}" "${RECS[$set]}" "$ow" "$orss" "$pw" "$pwall" "$prss" 2>"$DATA/line.json" <<'PY'
import sys
s, f, r, ow, orss, pw, pwall, prss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
ow = max(ow, 0.005)
pw = max(pw, 0.0005)
print(f"{s:<8} {f:>7} {r:>9} | {'':<10} {ow:>9.2f} {f/ow:>11.1f} {r/ow:>9.0f} {orss/1024:>9.1f} | {'':<10} {pw:>9.2f} {f/pw:>11.1f} {r/pw:>9.0f} {prss/1024:>9.1f} | {pw/ow:.1f}x")
print(f'"{s}": {{"files": {f}, "records": {r}, "ours_wall_s": {ow}, "ours_rss_kib": {orss}, "parsedmarc_parse_s": {pw}, "parsedmarc_wall_s": {pwall}, "parsedmarc_rss_kib": {prss}, "ratio": {pw/ow:.2f}}}', file=sys.stderr)
PY
    )
    printf '%s\n' "$line"
    results+="$(cat "$DATA/line.json"),"
done
printf '%s\n' "${results%,}}" >"$DATA/results.json"
say ""
say "figures: $DATA/results.json; conformance table: $DATA/conformance.md"
say "(mailwarden: whole process incl. start-up; parsedmarc: parse time after 'import parsedmarc', offline=True)"
exit "$conf"
