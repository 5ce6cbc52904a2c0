#!/usr/bin/env bash
# The hardened profile against the faithful one as a whole program: `vmext-detect scan
# --engine native --profile faithful|hardened` over the folder of hourly files that
# bench/files.sh generates (FILES files of RECORDS records, alternately ECS and raw), on one
# thread and on every core.
#
#   bench/profiles.sh                     FILES=48 RECORDS=10000 ROUNDS=5 by default
#   BASELINE=old/vmext-detect bench/profiles.sh
#
# With BASELINE, an older build of `vmext-detect` runs the same commands in the same rounds.
# Each figure is the median wall-clock time of ROUNDS runs, the commands in alternation,
# output to /dev/null; the parsed and alert counts come from each build's summary line.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/hourly.sh   # FILES, RECORDS, hourly_files
ROUNDS=${ROUNDS:-5}
say() { printf '==> %s\n' "$*" >&2; }

cargo build --profile dist --quiet -p vmext-detect
hourly_files "$FILES" "$RECORDS"
files=("${HOURLY[@]}")
bytes=$(cat "${files[@]}" | wc -c)
say "$FILES files, $((bytes / 1000000)) MB"

builds=("target/dist/vmext-detect")
labels=("")
if [[ -n ${BASELINE:-} ]]; then
    builds+=("$BASELINE")
    labels+=("baseline, ")
fi
names=() cmds=() summaries=()
for b in "${!builds[@]}"; do
    for profile in faithful hardened; do
        for threads in "" "-j 1"; do
            where=$([[ -z $threads ]] && echo "every core" || echo "one thread")
            names+=("${labels[$b]}$profile, $where")
            cmds+=("${builds[$b]} scan --no-progress --engine native --profile $profile $threads ${files[*]}")
        done
    done
done

declare -A times
for ((r = 0; r < ROUNDS; r++)); do
    for k in "${!cmds[@]}"; do
        start=$(date +%s.%N)
        # Exit status 1 means alerts were raised; 2 and above are errors.
        bash -c "${cmds[$k]} > /dev/null 2> target/bench/profiles.summary" || [ $? -lt 2 ]
        end=$(date +%s.%N)
        times[$k]+="$(echo "$end - $start" | bc) "
        summaries[k]=$(tail -n 1 target/bench/profiles.summary)
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| build and profile | median wall time (%s rounds) | MB/s | summary |\n|---|---|---|---|\n' \
    "$ROUNDS"
for k in "${!cmds[@]}"; do
    m=$(echo "${times[$k]}" | median)
    printf '| %s | %.3f s | %.0f | %s |\n' "${names[$k]}" "$m" \
        "$(echo "$bytes / 1000000 / $m" | bc -l)" "${summaries[$k]}"
done
printf '\nload average after the runs: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
