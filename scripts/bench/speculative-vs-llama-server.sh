#!/usr/bin/env bash
# Speculative decoding, uma serve against llama-server on the same files and thread count, one
# server at a time in one run (scripts/bench/speculative_client.py drives both, one greedy
# streaming request at a time):
#   edit workload (the answer copies the prompt): plain, then prompt lookup
#     (uma --speculative lookup; llama-server --spec-type ngram-simple);
#   chat workload: plain, then the DRAFT model
#     (uma --draft DRAFT; llama-server --model-draft DRAFT).
# UMA_FIRST=1 runs uma first (the machine drifts over minutes: run both orders). Prints one JSON
# line per configuration and a table of decode tokens/s and speed-ups over each server's own
# plain run.
#
#   scripts/bench/speculative-vs-llama-server.sh MODEL.gguf DRAFT.gguf [THREADS=2] [REPEAT=2]
#   (MAX_TOKENS=512: tokens per answer)
#
# Needs the peer build of ../shared/peers/llama-cpp.sh (its bin folder in $LLAMA_BIN, or found in
# ~/.cache/uma-peers). Servers bind 127.0.0.1 on free ports and are always stopped.
set -euo pipefail
model="$1"; draft="$2"; threads="${3:-2}"; repeat="${4:-2}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
client="$root/scripts/bench/speculative_client.py"
# shellcheck source=servers.sh
source "$root/scripts/bench/servers.sh"
# run LABEL WORKLOAD COMMAND...: starts the server (its port appended), runs the workload, stops it.
run() {
  local label="$1" workload="$2"; shift 2
  local port; port="$(free_port)"
  "$@" --port "$port" >"$out/server.log" 2>&1 & server=$!
  wait_ready "$port" "$out/server.log"
  python3 "$client" "http://127.0.0.1:$port" "$name" "$workload" --repeat "$repeat" \
    --max-tokens "${MAX_TOKENS:-512}" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d['label']='$label'; print(json.dumps(d))" \
    | tee -a "$out/results.jsonl"
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=""
}
llama=("$bin/llama-server" -m "$model" -t "$threads" -np 1 -c 8192 --host 127.0.0.1 --alias "$name" --no-webui)
umas=("$uma" serve "$model" --threads "$threads" --parallel 1 --ctx 8192 --host 127.0.0.1)
run_llama() {
  run "llama-server plain edit" edit "${llama[@]}"
  run "llama-server ngram edit" edit "${llama[@]}" --spec-type ngram-simple
  run "llama-server plain chat" chat "${llama[@]}"
  run "llama-server draft chat" chat "${llama[@]}" --model-draft "$draft" -td "$threads"
}
run_uma() {
  run "uma plain edit" edit "${umas[@]}" --speculative off
  run "uma lookup edit" edit "${umas[@]}" --speculative lookup
  run "uma plain chat" chat "${umas[@]}" --speculative off
  run "uma draft chat" chat "${umas[@]}" --draft "$draft"
}
if [ "${UMA_FIRST:-0}" = 1 ]; then run_uma; run_llama; else run_llama; run_uma; fi

python3 - "$out/results.jsonl" <<'EOF'
import json, sys
rows = {r["label"]: r["decode_tok_s"] for r in map(json.loads, open(sys.argv[1]))}
print(f"\n{'configuration':28} {'decode tok/s':>12} {'vs its plain':>12} {'uma / llama':>12}")
for label, speed in rows.items():
    server, mode, workload = label.rsplit(" ", 2)
    plain = rows.get(f"{server} plain {workload}")
    other = "uma" if server == "llama-server" else "llama-server"
    peer = {"ngram": "lookup", "lookup": "ngram"}.get(mode, mode)
    versus = rows.get(f"{other} {peer} {workload}")
    ratio = f"{speed / versus:.2f}" if server == "uma" and versus else ""
    print(f"{label:28} {speed:12.1f} {speed / plain if plain else 0:11.2f}x {ratio:>12}")
EOF
