#!/usr/bin/env bash
# CPU time per record in the real Fluent Bit: tail -> filter -> null over a generated ECS corpus
# (records of about 1 KB), for no filter, a pass-through wasm function (the host's own cost of a
# call), Fluent Bit's grep and lua filters doing the rule's cheapest test, each function the
# module exports, and the module compiled ahead of time by wamrc (`cargo xtask aot`, which builds
# wamrc first when it is not built yet: minutes) in two modes, with the pass-through function
# compiled ahead of time too. Prints a Markdown table.
#
#   bench/fluent-bit-cpu.sh            RECORDS=200000 ROUNDS=3 AOT=1 by default
#   AOT=0 bench/fluent-bit-cpu.sh      without the AOT rows (no wamrc needed)
#   BASELINE=old.wasm bench/fluent-bit-cpu.sh   adds rows for an earlier build of the module
#
# The binary is $FLUENT_BIT, else fluent-bit on PATH, else ../shared/bin/fluent-bit. Each figure
# is the median over ROUNDS runs of the process's user + system CPU time (GNU time) divided by
# the number of records: start-up (about 0.05 s of CPU) included, the wait for the last flush
# excluded (it costs no CPU).
set -euo pipefail

cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-200000}
ROUNDS=${ROUNDS:-3}
AOT=${AOT:-1}
export LC_ALL=C

FB=${FLUENT_BIT:-$(command -v fluent-bit || echo ../shared/bin/fluent-bit)}
[[ -x $FB ]] || { echo "no Fluent Bit binary (set FLUENT_BIT)" >&2; exit 2; }

say() { printf '==> %s\n' "$*" >&2; }

say "building the Fluent Bit module and its test-hooks build (for the pass-through function)"
cargo build --quiet -p vmext-guest --target wasm32-wasip1 --profile wasm-release >&2
cargo build --quiet -p vmext-guest --target wasm32-wasip1 --profile wasm-release \
    --features test-hooks --target-dir target/test-hooks >&2
MODULE=$PWD/target/wasm32-wasip1/wasm-release/vmext_guest.wasm
HOOKS=$PWD/target/test-hooks/wasm32-wasip1/wasm-release/vmext_guest.wasm
AOT_MODULE=$PWD/target/aot/vmext_guest.$(uname -m).aot
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ $AOT == 1 ]]; then
    say "compiling the module ahead of time (cargo xtask aot)"
    cargo xtask aot >&2
    # The test-hooks build too, for an AOT pass-through row: Fluent Bit's own cost of a wasm
    # filter whose module costs next to nothing, the floor for any AOT module.
    WAMRC=$(ls target/wamrc/WAMR-*/build/wamrc | head -n 1)
    HOOKS_AOT=$WORK/vmext_guest_test_hooks.$(uname -m).aot
    say "compiling the test-hooks build ahead of time ($WAMRC)"
    "$WAMRC" --target="$(uname -m)" -o "$HOOKS_AOT" "$HOOKS" > /dev/null
fi

say "generating $RECORDS ECS records"
cargo run --quiet --release -p host-test -- generate --records "$RECORDS" --shape ecs \
    > "$WORK/corpus.ndjson"
BYTES=$(stat -c %s "$WORK/corpus.ndjson")

cat > "$WORK/filter.lua" <<'EOF'
-- The rule's cheapest test, by hand: the operation name, case-insensitively.
function check(tag, timestamp, record)
  local a = record["azure"]
  local op = a and a["activitylogs"] and a["activitylogs"]["operation_name"]
  if type(op) == "string" and string.find(string.upper(op), "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE", 1, true) then
    record["suspect"] = true
    return 1, timestamp, record
  end
  return 0, timestamp, record
end
EOF

config() { # filter block (YAML, indented under filters:) or empty
    cat <<EOF
service:
  flush: 1
  log_level: warn
parsers:
  - name: json
    format: json
pipeline:
  inputs:
    - name: tail
      path: $WORK/corpus.ndjson
      parser: json
      read_from_head: true
      exit_on_eof: true
      buffer_chunk_size: 1M
      buffer_max_size: 4M
      tag: t
EOF
    if [[ -n $1 ]]; then printf '  filters:\n%s\n' "$1"; fi
    cat <<EOF
  outputs:
    - name: null
      match: t
EOF
}

wasm() { # module, function
    printf '    - name: wasm\n      match: t\n      wasm_path: %s\n      function_name: %s\n      event_format: json\n      wasm_stack_size: 1M' "$1" "$2"
}

declare -a NAMES FILTERS
add() { NAMES+=("$1"); FILTERS+=("$2"); }
add "no filter" ""
add "wasm, pass-through function (returns the record pointer)" "$(wasm "$HOOKS" vmext_test_pass_through)"
add "grep (\`regex \$azure['activitylogs']['operation_name'] (?i)extensions/write\`)" \
    "$(printf "    - name: grep\n      match: t\n      regex: \$azure['activitylogs']['operation_name'] (?i)extensions/write")"
add "lua (string.find on the operation name)" \
    "$(printf '    - name: lua\n      match: t\n      script: %s\n      call: check' "$WORK/filter.lua")"
for f in vmext_alerts vmext_annotate vmext_alerts_hardened vmext_annotate_hardened; do
    add "wasm, \`$f\`" "$(wasm "$MODULE" "$f")"
done
if [[ -n ${BASELINE:-} ]]; then # an earlier build of the module, to compare in one sitting
    for f in vmext_alerts vmext_annotate vmext_alerts_hardened vmext_annotate_hardened; do
        add "baseline (\`$(basename "$BASELINE")\`), \`$f\`" "$(wasm "$(realpath "$BASELINE")" "$f")"
    done
fi
if [[ $AOT == 1 ]]; then
    add "AOT, pass-through function (returns the record pointer)" \
        "$(wasm "$HOOKS_AOT" vmext_test_pass_through)"
    for f in vmext_alerts vmext_annotate; do
        add "AOT (\`$(basename "$AOT_MODULE")\`), \`$f\`" "$(wasm "$AOT_MODULE" "$f")"
    done
fi

cpu_seconds() { # config file -> user+sys seconds
    local t
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$FB" -q -c "$1" > /dev/null 2> "$WORK/stderr" \
        || { cat "$WORK/stderr" >&2; exit 1; }
    read -r u s < "$WORK/time"
    echo "$u $s" | awk '{ printf "%.3f", $1 + $2 }'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
echo "| filter | CPU per record (median of $ROUNDS) | over no filter |"
echo "|---|---|---|"
BASE=""
for i in "${!NAMES[@]}"; do
    config "${FILTERS[$i]}" > "$WORK/run.yaml"
    samples=""
    for _ in $(seq "$ROUNDS"); do samples+="$(cpu_seconds "$WORK/run.yaml") "; done
    secs=$(echo "$samples" | median)
    us=$(awk -v s="$secs" -v n="$RECORDS" 'BEGIN { printf "%.1f", s * 1e6 / n }')
    [[ -z $BASE ]] && BASE=$us
    over=$(awk -v a="$us" -v b="$BASE" 'BEGIN { printf "%+.1f µs", a - b }')
    say "${NAMES[$i]}: $samples s"
    echo "| ${NAMES[$i]} | $us µs | $over |"
done
echo
echo "$RECORDS ECS records, $BYTES bytes; $("$FB" --version | head -n 1); $(nproc) cores;" \
    "load average before: $LOAD_BEFORE, after: $(cut -d ' ' -f 1-3 /proc/loadavg)."
