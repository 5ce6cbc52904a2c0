#!/usr/bin/env bash
# Whole-program comparison of every way this project runs the rule, against `grep -F`, on the
# same generated corpora, in one run with the programs alternating. Prints a Markdown table and,
# with --write, puts it into BENCHMARKS.md between its compare markers.
#
#   bench/compare.sh [--write]        RECORDS=100000 ROUNDS=5 by default
#
# Each figure is the median wall-clock time of ROUNDS runs of the whole program (start-up
# included: reading the file, loading the compiled WebAssembly from its cache, writing results
# to a file). The first round also warms the page cache and the compile cache.
set -euo pipefail

cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-100000}
ROUNDS=${ROUNDS:-5}
WRITE=0
[[ ${1:-} == --write ]] && WRITE=1

OUT=target/bench
mkdir -p "$OUT"
export LC_ALL=C

say() { printf '==> %s\n' "$*" >&2; }

say "building vmext-detect, the component and the Fluent Bit module (release), and the harness"
cargo xtask build >&2
cargo build --release --quiet -p host-test >&2
say "building vrl-scan (release; the vrl crate takes a while the first time)"
cargo build --release --quiet --manifest-path vrl-parity/Cargo.toml --bin vrl-scan >&2
DETECT=target/dist/vmext-detect
HARNESS=target/release/host-test
VRL_SCAN=$(find target vrl-parity/target -path '*/release/vrl-scan' -type f 2>/dev/null | head -n 1)
[[ -x $VRL_SCAN ]] || { echo "vrl-scan was not built" >&2; exit 2; }

# The rule's required literals (every matching record contains each of them); grep gets the
# rarest in the corpus, the cheapest exact test a scan could do.
CANDIDATES=("MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE" "User")

now_ns() { date +%s%N; }

declare -A SECONDS_OF
run() { # name, command...
    local name=$1; shift
    local start end
    start=$(now_ns)
    # Output goes to a file, not /dev/null: GNU grep stops at the first match when its output
    # is /dev/null, which would make it look thousands of times faster than it is.
    "$@" > "$OUT/last-output" 2> /dev/null || [[ $? -eq 1 ]]   # exit 1: alerts were found
    end=$(now_ns)
    SECONDS_OF[$name]+="$(( end - start )) "
}

median_s() { # nanosecond samples -> median seconds
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.4f", m / 1e9}'
}

TABLE=$(mktemp)
{
    echo "\`RECORDS=$RECORDS ROUNDS=$ROUNDS bench/compare.sh --write\` on $(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)), $(date -u +%Y-%m-%d). Median of $ROUNDS alternating runs of each whole program."
    echo
    echo "| corpus | program | median wall time | records/s | MB/s | time / fastest |"
    echo "|---|---|---|---|---|---|"
} > "$TABLE"

for shape in ecs raw; do
    corpus=$OUT/$shape-$RECORDS.ndjson
    if [[ ! -s $corpus ]]; then
        say "generating $corpus"
        "$HARNESS" generate --records "$RECORDS" --shape "$shape" --seed 1 > "$corpus"
    fi
    bytes=$(stat -c %s "$corpus")
    rarest=""; fewest=""
    for literal in "${CANDIDATES[@]}"; do
        n=$(grep -F -c -- "$literal" "$corpus" || true)
        if [[ -z $fewest || $n -lt $fewest ]]; then fewest=$n; rarest=$literal; fi
    done
    say "$shape: $bytes bytes; grep -F uses \"$rarest\" (on $fewest lines)"
    unset SECONDS_OF; declare -A SECONDS_OF
    names=("native engine (vmext-detect scan --engine native)"
           "component under wasmtime (vmext-detect scan)"
           "Fluent Bit module, emulated calling convention (host-test fluent-bit --function vmext_alerts)"
           "VRL program in the vrl runtime (vrl-scan)"
           "grep -F -c \"$rarest\"")
    for round in $(seq "$ROUNDS"); do
        say "$shape round $round/$ROUNDS"
        run "${names[0]}" "$DETECT" scan --no-progress --engine native "$corpus"
        run "${names[1]}" "$DETECT" scan --no-progress "$corpus"
        run "${names[2]}" "$HARNESS" fluent-bit --function vmext_alerts "$corpus"
        run "${names[3]}" "$VRL_SCAN" "$corpus"
        run "${names[4]}" grep -F -c -- "$rarest" "$corpus"
    done
    declare -A MEDIAN
    fastest=""
    for name in "${names[@]}"; do
        MEDIAN[$name]=$(echo "${SECONDS_OF[$name]}" | median_s)
        if [[ -z $fastest ]] || awk -v a="${MEDIAN[$name]}" -v b="$fastest" 'BEGIN {exit !(a < b)}'; then
            fastest=${MEDIAN[$name]}
        fi
    done
    for name in "${names[@]}"; do
        awk -v shape="$shape" -v name="$name" -v s="${MEDIAN[$name]}" -v n="$RECORDS" \
            -v bytes="$bytes" -v fast="$fastest" -v mb="$(awk -v b="$bytes" 'BEGIN {printf "%.0f", b / 1e6}')" \
            'BEGIN { printf "| %s, %s records, %s MB | %s | %.3f s | %.0f | %.0f | %.2f× |\n", shape, n, mb, name, s, n / s, bytes / 1e6 / s, s / fast }' >> "$TABLE"
    done
done

cat "$TABLE"
if [[ $WRITE -eq 1 ]]; then
    awk -v table="$TABLE" '
        /<!-- compare:begin/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
        /<!-- compare:end -->/ { skip = 0 }
        !skip { print }
    ' BENCHMARKS.md > "$OUT/BENCHMARKS.md.new"
    mv "$OUT/BENCHMARKS.md.new" BENCHMARKS.md
    say "BENCHMARKS.md updated"
fi
rm -f "$TABLE"
