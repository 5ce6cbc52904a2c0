#!/usr/bin/env bash
# A folder of hourly exports on every core: `vmext-detect scan --engine native` against
# ripgrep counting the rule's rarest literal (`rg -F -c`, itself on every core), on FILES
# generated files of RECORDS records each, alternately ECS and raw (as a day of hourly
# PT1H.json exports, decompressed).
#
#   bench/files.sh              FILES=48 RECORDS=10000 ROUNDS=5 by default
#
# ripgrep is installed from Debian's packages when missing. The rarest literal is found by
# counting each of the rule's prefilter literals (`vmext-detect rule`) with ripgrep and keeping
# the one with the fewest matching lines. Each figure is the median wall-clock time of ROUNDS
# runs, the programs in alternation, output to /dev/null.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/hourly.sh   # FILES, RECORDS, hourly_files
ROUNDS=${ROUNDS:-5}
say() { printf '==> %s\n' "$*" >&2; }

command -v rg > /dev/null || { apt-get update -qq && apt-get install -y -qq ripgrep; } >&2
cargo build --profile dist --quiet -p vmext-detect
DETECT=target/dist/vmext-detect
hourly_files "$FILES" "$RECORDS"
DIR=$HOURLY_DIR
bytes=$(cat "$DIR"/* | wc -c)
say "$FILES files, $((bytes / 1000000)) MB"

# The rule's literals, as `vmext-detect rule` prints them: ["A", "B", …].
mapfile -t literals < <("$DETECT" rule | sed -n 's/^prefilter literals.*: \[\(.*\)\]$/\1/p' \
    | tr ',' '\n' | sed 's/^ *"//; s/"$//' | grep -v '^$')
rarest="" fewest=""
for lit in "${literals[@]}"; do
    n=$(rg -F -c --no-filename -- "$lit" "$DIR" | paste -sd+ | bc 2>/dev/null || echo 0)
    if [[ -z $fewest || $n -lt $fewest ]]; then fewest=$n rarest=$lit; fi
done
say "rarest literal: \"$rarest\" ($fewest lines)"

names=("rg -F -c \"$rarest\" (every core)" "vmext-detect scan --engine native (every core)"
       "vmext-detect scan --engine native -j 1")
cmds=("rg -F -c -- '$rarest' $DIR > /dev/null"
      "$DETECT scan --no-progress --engine native $DIR/* > /dev/null 2> /dev/null || [ \$? -lt 2 ]"
      "$DETECT scan --no-progress --engine native -j 1 $DIR/* > /dev/null 2> /dev/null || [ \$? -lt 2 ]")
declare -A times
for ((r = 0; r < ROUNDS; r++)); do
    for k in "${!cmds[@]}"; do
        start=$(date +%s.%N)
        bash -c "${cmds[$k]}"
        end=$(date +%s.%N)
        times[$k]+="$(echo "$end - $start" | bc) "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| program | median wall time (%s rounds) | MB/s |\n|---|---|---|\n' "$ROUNDS"
for k in "${!cmds[@]}"; do
    m=$(echo "${times[$k]}" | median)
    printf '| %s | %.3f s | %.0f |\n' "${names[$k]}" "$m" "$(echo "$bytes / 1000000 / $m" | bc -l)"
done
printf '\nload average after the runs: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
