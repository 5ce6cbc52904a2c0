# Sourced by bench/files.sh and bench/profiles.sh: a day of hourly exports, generated once.
#
# FILES and RECORDS default to 48 and 10,000. `hourly_files FILES RECORDS` writes FILES files
# of RECORDS records each into HOURLY_DIR, alternately ECS and raw (as a day of hourly PT1H.json
# exports, decompressed), keeping the files already there, and sets the array HOURLY to their
# paths in order.
HOURLY_DIR=target/bench/files/hourly
FILES=${FILES:-48}
RECORDS=${RECORDS:-10000}

hourly_files() {
    local files=$1 records=$2 i file shape
    cargo build --release --quiet -p host-test
    mkdir -p "$HOURLY_DIR"
    HOURLY=()
    for ((i = 0; i < files; i++)); do
        file=$(printf '%s/PT1H-%02d.json' "$HOURLY_DIR" "$i")
        shape=$([[ $((i % 2)) == 0 ]] && echo ecs || echo raw)
        [[ -s $file ]] || target/release/host-test generate --records "$records" \
            --shape "$shape" --seed $((i + 1)) > "$file"
        HOURLY+=("$file")
    done
}
