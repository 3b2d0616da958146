#!/usr/bin/env bash
# Sourced: starts moto's server (DynamoDB + KMS emulator) on a free loopback
# port, exports AWS_ENDPOINT_URL and dummy credentials, and records its pid
# in MOTO_PID so the caller can stop it. The server is moto's, with each
# DynamoDB request atomic as in DynamoDB (scripts/moto_server.py says why).
# MOTO_SERVER overrides the server
# command (the benchmark's patched one: bench/moto_server.py); MOTO_LOG
# keeps its output.
start_moto() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ${MOTO_SERVER:-.venv/bin/python scripts/moto_server.py} -H 127.0.0.1 -p "$port" >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "${MOTO_SERVER:-moto_server} did not start on port $port" >&2
  return 1
}
