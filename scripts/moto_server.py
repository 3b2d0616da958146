"""moto's server (DynamoDB + KMS emulator) with DynamoDB's atomicity.

In DynamoDB every request is atomic: a conditional write's check and write
happen as one step, so of two concurrent `PutItem`s conditioned on
`attribute_not_exists`, exactly one succeeds. moto 5.2.5's threaded server
evaluates the condition and then writes, with nothing between two request
threads, so under load both can succeed. The connector's concurrency
guarantees (one idempotency claim, one refresh lease, one proposal
promotion) rest on that atomicity, and their tests ran flaky on a busy
machine. Here each DynamoDB request runs under one lock, as if the table
served it alone; nothing else changes. Tests, the local stack and CI use it
(scripts/moto.sh, tests/integration/src/lib.rs).

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT (moto_server's options).
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _atomic_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _atomic_call_action

if __name__ == "__main__":
    sys.exit(main())
