#!/usr/bin/env bash
# How long the generated VRL program takes to compile where Vector users run it: the real
# Vector's start-up on empty input (`stdin` → one `remap` with the program's file → `console`),
# and `vrl-scan`'s "program compiled in" figure, which times `vrl::compiler::compile` alone.
#
#   bench/vrl-compile.sh                       ROUNDS=7 by default
#   BASELINE=old.vrl bench/vrl-compile.sh      an older program in the same rounds
#   VRL_SCAN=path/to/vrl-scan bench/vrl-compile.sh   a vrl-scan of your choosing
#
# Vector compiles a `remap` program more than once while it starts, so its start-up is a
# multiple of one compile. `vrl-scan` is the release build of `vrl-parity` when there is one,
# else its debug build (`vrl` at opt-level 2), which is built when neither exists; the table
# says which. Each figure is the median of ROUNDS runs, the programs in alternation.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
OUT=target/bench/vrl-compile
mkdir -p "$OUT"
say() { printf '==> %s\n' "$*" >&2; }

VECTOR=${VECTOR:-$(command -v vector || echo ../shared/bin/vector)}
[[ -x $VECTOR ]] || { echo "no vector binary (set VECTOR)" >&2; exit 2; }

if [[ -z ${VRL_SCAN:-} ]]; then
    if [[ -x target/vrl-parity/release/vrl-scan ]]; then
        VRL_SCAN=target/vrl-parity/release/vrl-scan
    else
        say "building vrl-scan (debug, vrl at opt-level 2)"
        # From its own folder, so that its Cargo configuration (the build folder) applies.
        (cd vrl-parity && cargo build --quiet --bin vrl-scan)
        VRL_SCAN=target/vrl-parity/debug/vrl-scan
    fi
fi

programs=("vector/azure_vm_extension_deployment_by_user.vrl")
labels=("generated (this checkout)")
if [[ -n ${BASELINE:-} ]]; then
    programs+=("$(realpath "$BASELINE")")
    labels+=("baseline ($(basename "$BASELINE"))")
fi

. bench/vector-config.sh   # vector_config
config() { # index, program -> $OUT/index.yaml
    vector_config "$OUT/$1.yaml" "file: $(realpath "$2")"
}
: > "$OUT/empty.ndjson"
for i in "${!programs[@]}"; do
    config "$i" "${programs[$i]}"
    : > "$OUT/vector-$i.ms"
    : > "$OUT/scan-$i.s"
done

for round in $(seq "$ROUNDS"); do
    say "round $round of $ROUNDS"
    for i in "${!programs[@]}"; do
        start=$(date +%s%N)
        "$VECTOR" --quiet --config "$OUT/$i.yaml" < /dev/null > /dev/null
        end=$(date +%s%N)
        echo $(( (end - start) / 1000000 )) >> "$OUT/vector-$i.ms"
        "$VRL_SCAN" --program "${programs[$i]}" "$OUT/empty.ndjson" 2>&1 >/dev/null \
            | sed -n 's/.*program compiled in \([0-9.]*\) s.*/\1/p' >> "$OUT/scan-$i.s"
    done
done

median() { sort -n | awk '{a[NR]=$1} END {printf "%s", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
range() { sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }

echo "$("$VECTOR" --version); vrl-scan: $VRL_SCAN; $(nproc) cores; median of $ROUNDS alternating runs"
echo
echo "| program | lines | Vector start-up, empty input: median (range) | vrl-scan compile: median (range) |"
echo "|---|---|---|---|"
for i in "${!programs[@]}"; do
    v_med=$(median < "$OUT/vector-$i.ms")
    v_rng=$(range < "$OUT/vector-$i.ms")
    s_med=$(median < "$OUT/scan-$i.s")
    s_rng=$(range < "$OUT/scan-$i.s")
    echo "| ${labels[$i]} | $(wc -l < "${programs[$i]}") | $(awk -v m="$v_med" 'BEGIN {printf "%.2f s", m / 1000}') ($v_rng ms) | $s_med s ($s_rng s) |"
done
