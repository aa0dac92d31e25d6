# Sourced by the scripts that serve one model with uma and llama-server in turn
# (serve-vs-llama-server.sh, speculative-vs-llama-server.sh). Expects `root` and `model`; sets
# `bin` (llama.cpp's binaries: $LLAMA_BIN, or the peer build in ~/.cache/uma-peers), `uma`
# ($UMA_BIN, another build to measure, else this checkout's, built in release), `name` (the
# model's alias), `out` (a scratch folder) and `server` (the running server's pid), and stops the
# server and removes the scratch on exit. Servers bind 127.0.0.1 on free ports.
bin="${LLAMA_BIN:-$(ls -d "$HOME"/.cache/uma-peers/*/build/bin 2>/dev/null | head -1)}"
[ -x "$bin/llama-server" ] || { echo "llama-server not found: set LLAMA_BIN" >&2; exit 1; }
uma="${UMA_BIN:-$root/target/release/uma}"
[ -n "${UMA_BIN:-}" ] || (cd "$root" && cargo build --release -q -p uma-cli)
name="$(basename "$model" .gguf)"
out="$(mktemp -d)"; server=""
cleanup() { [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_ready PORT [LOG]: until the server's /health answers (2 minutes at most; LOG's tail on failure).
wait_ready() {
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.5
  done
  echo "server on port $1 did not become ready" >&2
  [ -n "${2:-}" ] && tail -5 "$2" >&2
  exit 1
}
