#!/bin/bash
# What a single-VPS install needs, measured on the release binary against the instant mock
# upstream (benches/support/mock_upstream.rs): idle RSS, RSS under chat load, disk per chat and
# per RAG chunk (README "Production"). Needs wrk, jq and curl.
#
#   cargo build --release --bin ares --example mock_upstream && benches/resources.sh
#
# Chats: /v1/chat for 10 s at 16 connections, each a new conversation (two messages, a run, a
# usage event, a request-log record, a cost rollup). RAG: 120 documents of 10,000 words,
# word chunking (200 words, 50 overlap), the built-in embedder, in a second, fresh data dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
sed 's#MOCK_URL#http://127.0.0.1:18121#' "$ROOT/benches/support/gateway.toml" > ares.toml
cat > chat.lua <<'LUA'
wrk.method = "POST"
wrk.body = '{"message":"What are your opening hours on a public holiday, and can I visit without an appointment?","agent_type":"product"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
LUA
"$ROOT/target/release/examples/mock_upstream" 127.0.0.1:18121 > mock.log 2>&1 &

serve() {
  ADMIN_API_KEY=res-admin JWT_SECRET=res-jwt-secret-res-jwt-secret-0123456789 \
    "$ROOT/target/release/ares" serve --data-dir "$1" --port 18120 > "$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do curl -sf localhost:18120/health > /dev/null && return; sleep 0.1; done
}
rss() { awk '/VmRSS/{printf "%.1f MiB", $2/1024}' "/proc/$PID/status"; }

serve chats
echo "idle RSS: $(rss)"
KEY=$(curl -s localhost:18120/api/admin/provision-client -H "X-Admin-Secret: res-admin" \
  -d '{"name":"acme","tier":"enterprise","product_type":"generic","api_key_name":"k"}' | jq -r .raw_api_key)
CHATS=$(KEY=$KEY wrk -t2 -c16 -d10s -s chat.lua http://127.0.0.1:18120/v1/chat | awk '/requests in/{print $1}')
echo "RSS after $CHATS chats: $(rss)"
sleep 1; kill "$PID"; wait "$PID" || true
BYTES=$(stat -c %s chats/ares.redb)
echo "chats: $CHATS, ares.redb $BYTES bytes: $((BYTES / CHATS)) bytes per chat (two messages)"

serve rag
TOKEN=$(curl -s localhost:18120/api/auth/register -d '{"email":"rag@example.com","password":"correct-horse"}' | jq -r .access_token)
CHUNKS=$(python3 - "$TOKEN" <<'PY'
import json, random, sys, urllib.request
random.seed(7)
words = ("the office opens nine five monday friday holiday appointment visit support invoice order refund "
         "product delivery warranty account billing payment team contact schedule policy").split()
chunks = 0
for _ in range(120):
    text = " ".join(random.choice(words) + ("." if i % 12 == 11 else "") for i in range(10000))
    request = urllib.request.Request("http://127.0.0.1:18120/api/rag/ingest",
        data=json.dumps({"collection": "docs", "content": text}).encode(),
        headers={"Authorization": "Bearer " + sys.argv[1], "Content-Type": "application/json"})
    chunks += json.load(urllib.request.urlopen(request))["chunks_created"]
print(chunks)
PY
)
echo "RSS after $CHUNKS chunks: $(rss)"
kill "$PID"; wait "$PID" || true
for part in ares.redb search vectors; do
  BYTES=$(du -sb "rag/$part" | cut -f1)
  echo "rag/$part: $BYTES bytes, $((BYTES / CHUNKS)) per chunk"
done
