#!/usr/bin/env bash
# Events per second of the rule in the real Vector: the generated program against the obvious
# hand-written VRL a Vector user would write for the faithful rule on nested ECS fields
# (bench/vector-handwritten.vrl), and a `remap` that does nothing, on the same ECS corpus.
#
#   bench/vector.sh              RECORDS=200000 ROUNDS=3 SHAPE=ecs by default
#   SHAPE=raw bench/vector.sh    the same on raw Azure export records
#   BASELINE=old.vrl bench/vector.sh
#                                also an earlier generated program, side by side (e.g. from
#                                `git show REV:vector/azure_vm_extension_deployment_by_user.vrl`)
#
# Vector is found as the real-Vector test finds it: $VECTOR, then PATH, then ../shared/bin/vector.
# Each figure is the median wall-clock time of ROUNDS runs of `vector` reading the corpus on
# stdin (JSON decoder) through one `remap` to a `console` sink on /dev/null. The same
# configuration on empty input gives the start-up time (loading the configuration, compiling the
# program, shutting down); events/s is records / (time with the corpus - start-up time), and
# again from the corpus's second half alone (time of the whole - time of the first half).
set -euo pipefail

cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-200000}
ROUNDS=${ROUNDS:-3}
SHAPE=${SHAPE:-ecs}
BASELINE=${BASELINE:-}
OUT=target/bench/vector
mkdir -p "$OUT"

VECTOR=${VECTOR:-$(command -v vector || echo ../shared/bin/vector)}
[[ -x $VECTOR ]] || { echo "no vector binary (set VECTOR)" >&2; exit 2; }

HARNESS=target/release/host-test
[[ -x $HARNESS ]] || cargo build --release --quiet -p host-test
CORPUS=$OUT/$SHAPE-$RECORDS.ndjson
[[ -s $CORPUS ]] || "$HARNESS" generate --records "$RECORDS" --shape "$SHAPE" > "$CORPUS"

. bench/vector-config.sh   # vector_config
config() { # name, remap source line (file: or source:) -> $OUT/name.yaml
    vector_config "$OUT/$1.yaml" "$2"
}
config noop "source: 'true'"
config generated "file: $PWD/vector/azure_vm_extension_deployment_by_user.vrl"
config handwritten "file: $PWD/bench/vector-handwritten.vrl"
names=(noop handwritten generated)
if [[ -n $BASELINE ]]; then
    config baseline "file: $(realpath "$BASELINE")"
    names+=(baseline)
fi

median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "$("$VECTOR" --version), $(nproc) cores, $RECORDS $SHAPE records ($(du -m "$CORPUS" | cut -f1) MB), median of $ROUNDS runs"
echo
timed() { # config, input -> median milliseconds
    local times=()
    for _ in $(seq "$ROUNDS"); do
        local start end
        start=$(date +%s%N)
        "$VECTOR" --quiet --config "$OUT/$1.yaml" < "$2" > /dev/null
        end=$(date +%s%N)
        times+=("$(( (end - start) / 1000000 ))")
    done
    printf '%s\n' "${times[@]}" | median
}

# The first half of the corpus too: the difference between the whole and the half is the
# second half's events alone, with no start-up in it, so a start-up that varies by seconds from
# run to run (compiling a large program) does not blur the events/s.
HALF=$OUT/$SHAPE-$RECORDS-half.ndjson
[[ -s $HALF ]] || head -n "$(( RECORDS / 2 ))" "$CORPUS" > "$HALF"

echo "| remap program | median wall time | start-up (empty input) | events/s beyond start-up | events/s, second half |"
echo "|---|---|---|---|---|"
for name in "${names[@]}"; do
    empty=$(timed "$name" /dev/null)
    half=$(timed "$name" "$HALF")
    full=$(timed "$name" "$CORPUS")
    echo "| $name | $(awk -v m="$full" 'BEGIN {printf "%.2f s", m / 1000}') | $(awk -v m="$empty" 'BEGIN {printf "%.2f s", m / 1000}') | $(awk -v f="$full" -v e="$empty" -v n="$RECORDS" 'BEGIN {printf "%.0f", n / ((f - e) / 1000)}') | $(awk -v f="$full" -v h="$half" -v n="$RECORDS" 'BEGIN {printf "%.0f", (n - int(n / 2)) / ((f - h) / 1000)}') |"
done
