#!/usr/bin/env bash
# bench/dns.sh - wall time of `mailwarden dns` against checkdmarc, on the
# same zones served by the same private Knot server, in the same run.
#
#   bench/dns.sh                  build, set up, measure, print a table
#   SKIP_BUILD=1 bench/dns.sh     use the existing release binary
#
# What it does (bench/dns.md explains the figures):
#   1. checks the prerequisites (knotd, knotc, python3 with venv, cargo);
#   2. builds `cargo build --release -p mailwarden` (unless SKIP_BUILD=1);
#   3. installs checkdmarc (pinned) into bench/.venv (gitignored) when missing;
#   4. writes 10 mail domains d01.test .. d10.test (MX with reverse DNS, SPF
#      with a two-level include chain at a shared provider, DMARC with an
#      external report destination, DKIM at Mailcow's selector plus a
#      CNAME-delegated one, TLS-RPT, BIMI) and the provider and reverse zones
#      into bench/data/dns/, and starts its own knotd on $BENCH_ADDR port 53
#      (checkdmarc's --nameserver takes addresses only, no port);
#   5. measures, $RUNS runs each, the median and best wall time of
#        a. mailwarden dns --resolver ADDR --no-dnsbl --json d01.test
#        b. checkdmarc -n ADDR d01.test
#        c./d. the same for all 10 domains at once,
#      and the DNS queries each run sent (Knot's mod-stats counters);
#   6. prints a table and writes bench/data/dns/results.json; stops knotd.
#
# Environment:
#   SKIP_BUILD   1 = do not run cargo build
#   RUNS         runs per measurement (default 5)
#   BENCH_ADDR   loopback address for knotd, port 53 (default 127.0.0.153)
#   MAILWARDEN   the binary to measure (default target/release/mailwarden)
#
# Exit status: 0 done, 1 a tool failed on the zones, 2 missing prerequisite.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/data/dns
VENV=$BENCH/.venv
RUNS=${RUNS:-5}
ADDR=${BENCH_ADDR:-127.0.0.153}
CHECKDMARC_VERSION=6.0.4
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
MW=${MAILWARDEN:-$TARGET_DIR/release/mailwarden}
DOMAINS=(d01.test d02.test d03.test d04.test d05.test d06.test d07.test d08.test d09.test d10.test)

say() { printf '%s\n' "$*" >&2; }
die() { say "dns.sh: $1"; exit "${2:-2}"; }

# ---------------------------------------------------------------- 1. prerequisites
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
KNOTC=$(command -v knotc || echo /usr/sbin/knotc)
[[ -x $KNOTD && -x $KNOTC ]] ||
    die "knotd/knotc not found: apt-get install -y --no-install-recommends knot
  (with a /usr/sbin/policy-rc.d that exits 101 so the package's own service does not start)"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv"
[[ $(id -u) == 0 ]] || die "knotd must bind port 53: run as root"
if ss -Hlun "src $ADDR:53" 2>/dev/null | grep -q .; then
    die "$ADDR:53 is in use; set BENCH_ADDR to another loopback address (127.x.y.z)"
fi

# ---------------------------------------------------------------- 2. build
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    say "dns.sh: cargo build --release -p mailwarden"
    (cd "$ROOT" && cargo build --release -q -p mailwarden)
fi
[[ -x $MW ]] || die "$MW not found: run without SKIP_BUILD=1"

# ---------------------------------------------------------------- 3. checkdmarc
if [[ ! -x $VENV/bin/checkdmarc ]]; then
    say "dns.sh: installing checkdmarc $CHECKDMARC_VERSION into $VENV"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || die "python3 -m venv failed: apt-get install python3-venv"
    "$VENV/bin/pip" install -q "checkdmarc==$CHECKDMARC_VERSION" || die "pip install checkdmarc failed"
fi
CHECKDMARC=$VENV/bin/checkdmarc
CD_VERSION=$("$CHECKDMARC" --version 2>&1 | tail -1)

# ---------------------------------------------------------------- 4. zones + knotd
rm -rf "$WORK"
mkdir -p "$WORK"/{zones,run,db}
# Public keys made once with openssl (2048-bit RSA, SubjectPublicKeyInfo).
KEY=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0bBUroth/M+UEvbM0cEkWHSqb00uxcRSrVIGrCVmUNcxP1uFlUiEJRIThePSSoa/3uU6mB9YheRFSskg2grmcCnpW1n2YZEswWSwzH1lX/LgKspDZg+5ylSQHNkagYLmy+bzurfW2TqzwkZTEJg/UANSBcCVkqtYxv4uY6fQdkJAtpUwhtjiC0kfu8m9GLN3xeqx4jiEvuhoz/iISVntGx4pv0yQEEMrGRRnymzzZrNQZnXuD9JBuAMgIIgJ6lGNM/jfGPfZrGOYWU5P1mRpmWMcE/1pYyknZtYEsFlKCJobNP4VXK9HH/WbmUCS7yWG6H/9ZzPrKjEVVHusHct3NwIDAQAB
# A TXT value split into 255-byte character-strings.
txt() { local v=$1 out=""; while [[ -n $v ]]; do out+="\"${v:0:255}\" "; v=${v:255}; done; printf '%s' "$out"; }
soa() { printf '$ORIGIN %s.\n$TTL 300\n@ SOA ns1.%s. hostmaster.%s. 1 3600 600 86400 60\n@ NS ns1.%s.\nns1 A %s\n' "$1" "$1" "$1" "$1" "$ADDR"; }

{
    soa esp.test
    echo "_spf TXT \"v=spf1 ip4:198.51.100.0/24 include:_spf2.esp.test -all\""
    echo "_spf2 TXT \"v=spf1 ip4:203.0.113.0/24 ip6:2001:db8:5::/48 -all\""
    echo "*._report._dmarc.reports TXT \"v=DMARC1\""
    echo "reports MX 10 mx"
    echo "mx A 198.51.100.25"
    for d in "${DOMAINS[@]}"; do
        echo "sel1-${d%.test}._domainkey TXT $(txt "v=DKIM1; k=rsa; p=$KEY")"
    done
} > "$WORK/zones/esp.test.zone"
{
    printf '$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 300\n@ SOA ns1.esp.test. hostmaster.esp.test. 1 3600 600 86400 60\n@ NS ns1.esp.test.\n'
} > "$WORK/zones/2.0.192.in-addr.arpa.zone"
i=0
for d in "${DOMAINS[@]}"; do
    i=$((i + 1))
    a=$((10 + 2 * i)); b=$((11 + 2 * i))
    {
        soa "$d"
        echo "@ MX 10 mx1"
        echo "@ MX 20 mx2"
        echo "mx1 A 192.0.2.$a"
        echo "mx2 A 192.0.2.$b"
        echo "out A 192.0.2.200"
        echo "@ TXT \"v=spf1 mx a:out.$d include:_spf.esp.test ~all\""
        echo "_dmarc TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@$d,mailto:agg@reports.esp.test; ruf=mailto:forensic@$d; fo=1\""
        echo "dkim._domainkey TXT $(txt "v=DKIM1; k=rsa; p=$KEY")"
        echo "selector1._domainkey CNAME sel1-${d%.test}._domainkey.esp.test."
        echo "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tls@$d\""
        echo "default._bimi TXT \"v=BIMI1; l=https://$d/logo.svg\""
    } > "$WORK/zones/$d.zone"
    printf '%s PTR mx1.%s.\n%s PTR mx2.%s.\n' "$a" "$d" "$b" "$d" >> "$WORK/zones/2.0.192.in-addr.arpa.zone"
done

{
    printf 'server:\n    rundir: "%s/run"\n    listen: %s@53\n    udp-workers: 2\n    tcp-workers: 1\n    background-workers: 1\n' "$WORK" "$ADDR"
    printf '    user: root:root\n'
    printf 'log:\n  - target: stderr\n    any: warning\n'
    printf 'database:\n    storage: "%s/db"\n' "$WORK"
    printf 'control:\n    listen: "%s/run/knot.sock"\n' "$WORK"
    printf 'mod-stats:\n  - id: default\n    request-protocol: on\n'
    printf 'template:\n  - id: default\n    storage: "%s/zones"\n    zonefile-sync: -1\n    journal-content: none\n    global-module: mod-stats/default\n' "$WORK"
    printf 'zone:\n'
    for z in esp.test 2.0.192.in-addr.arpa "${DOMAINS[@]}"; do
        printf '  - domain: "%s."\n    file: "%s.zone"\n' "$z" "$z"
    done
} > "$WORK/knot.conf"
"$KNOTC" -c "$WORK/knot.conf" conf-check >/dev/null || die "knot.conf does not check: see $WORK/knot.conf"
"$KNOTC" -c "$WORK/knot.conf" zone-check >/dev/null 2>"$WORK/zone-check.log" || die "a zone does not load: $WORK/zone-check.log"

"$KNOTD" -c "$WORK/knot.conf" 2>"$WORK/knotd.log" &
KNOT_PID=$!
stop_knot() { kill "$KNOT_PID" 2>/dev/null && wait "$KNOT_PID" 2>/dev/null || true; }
trap stop_knot EXIT
for _ in $(seq 100); do
    if "$MW" dns --resolver "$ADDR" --no-dnsbl --no-common-selectors --json d10.test >/dev/null 2>&1; then break; fi
    kill -0 "$KNOT_PID" 2>/dev/null || die "knotd exited: $(tail -5 "$WORK/knotd.log")"
    sleep 0.1
done

# Queries Knot received so far (UDP and TCP, IPv4).
queries() {
    "$KNOTC" -c "$WORK/knot.conf" -s "$WORK/run/knot.sock" stats mod-stats.request-protocol 2>/dev/null |
        awk -F'= ' '/request-protocol/ { n += $2 } END { print n + 0 }'
}

# ---------------------------------------------------------------- 5. measure
# run_tool NAME CMD... : $RUNS runs; sets MEDIAN, BEST (seconds) and QUERIES (per run).
run_tool() {
    local name=$1; shift
    local times=() q0 q1 t0 t1 rc
    q0=$(queries)
    for _ in $(seq "$RUNS"); do
        t0=$EPOCHREALTIME
        set +e
        "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
        rc=$?
        set -e
        t1=$EPOCHREALTIME
        # mailwarden exits 1 when a finding fails; 2 is an error.
        if [[ $rc -ge 2 || ( $name == checkdmarc* && $rc -ne 0 ) ]]; then
            die "$name exited $rc: $(head -5 "$WORK/$name.err")" 1
        fi
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
    done
    q1=$(queries)
    MEDIAN=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    BEST=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
    QUERIES=$(( (q1 - q0) / RUNS ))
}

declare -A RESULT
for set in one ten; do
    if [[ $set == one ]]; then targets=(d01.test); else targets=("${DOMAINS[@]}"); fi
    run_tool "mailwarden-$set" "$MW" dns --resolver "$ADDR" --no-dnsbl --json "${targets[@]}"
    RESULT[mw-$set]="$MEDIAN $BEST $QUERIES"
    MW_FINDINGS=$(grep -o '"id":' "$WORK/mailwarden-$set.out" | wc -l)
    RESULT[mw-$set-findings]=$MW_FINDINGS
    run_tool "checkdmarc-$set" "$CHECKDMARC" -n "$ADDR" -t 2 "${targets[@]}"
    RESULT[cd-$set]="$MEDIAN $BEST $QUERIES"
done

# ---------------------------------------------------------------- 6. report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b / a }'; }
row() {
    local label=$1 mw=(${RESULT[mw-$2]}) cd=(${RESULT[cd-$2]})
    printf '| %-10s | %8.3f s | %8.3f s | %6s | %8.3f s | %8.3f s | %6s | %5sx |\n' \
        "$label" "${mw[0]}" "${mw[1]}" "${mw[2]}" "${cd[0]}" "${cd[1]}" "${cd[2]}" "$(ratio "${mw[0]}" "${cd[0]}")"
}
echo
echo "mailwarden $("$MW" --version | awk '{ print $2 }') vs checkdmarc $CD_VERSION; knotd on $ADDR:53; $RUNS runs each; $(nproc) CPUs"
echo
echo "| domains    | mailwarden median | best | queries | checkdmarc median | best | queries | speed-up (median) |"
echo "|------------|----------:|----------:|-------:|----------:|----------:|-------:|------:|"
row "1" one
row "10" ten
echo
mw_one=(${RESULT[mw-one]}); mw_ten=(${RESULT[mw-ten]}); cd_one=(${RESULT[cd-one]}); cd_ten=(${RESULT[cd-ten]})
cat > "$WORK/results.json" <<JSON
{"runs": $RUNS, "checkdmarc": "$CD_VERSION",
 "one":  {"mailwarden_median_s": ${mw_one[0]}, "mailwarden_best_s": ${mw_one[1]}, "mailwarden_queries": ${mw_one[2]}, "mailwarden_findings": ${RESULT[mw-one-findings]},
          "checkdmarc_median_s": ${cd_one[0]}, "checkdmarc_best_s": ${cd_one[1]}, "checkdmarc_queries": ${cd_one[2]}},
 "ten":  {"mailwarden_median_s": ${mw_ten[0]}, "mailwarden_best_s": ${mw_ten[1]}, "mailwarden_queries": ${mw_ten[2]}, "mailwarden_findings": ${RESULT[mw-ten-findings]},
          "checkdmarc_median_s": ${cd_ten[0]}, "checkdmarc_best_s": ${cd_ten[1]}, "checkdmarc_queries": ${cd_ten[2]}}}
JSON
say "dns.sh: figures in $WORK/results.json; outputs in $WORK/*.out"
