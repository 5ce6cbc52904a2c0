# Sourced by bench/vector.sh and bench/vrl-compile.sh: the pipeline both run in the real Vector.
#
# `vector_config FILE REMAP` writes to FILE a configuration of a `stdin` source (JSON decoding)
# → one `remap` transform → a `console` sink (JSON), where REMAP is the transform's program
# line: `source: '…'` or `file: /absolute/path.vrl`.
vector_config() {
    cat > "$1" <<EOF_CONFIG
sources:
  input:
    type: stdin
    decoding:
      codec: json
transforms:
  detect:
    type: remap
    inputs: [input]
    $2
sinks:
  out:
    type: console
    inputs: [detect]
    encoding:
      codec: json
EOF_CONFIG
}
