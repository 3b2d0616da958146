"""moto's server (DynamoDB + KMS emulator) for the benchmark, with one cost
artifact of moto removed so that the sweep over 10,000 tenants measures the
connector and not the emulator.

moto 5.2.5 backs up every table a TransactWriteItems touches with
`copy.deepcopy(table)` before applying it, so one transaction costs time
proportional to the whole table (1.6 s per transaction at 10,000 items here;
a sweep over 10,000 tenants would take hours). Here the backup holds only the
items the transaction touches, and a cancelled transaction puts exactly those
back: the same all-or-nothing outcome, the same errors, at a cost independent
of the table. Nothing else is changed; in particular moto still evaluates a
query on a global secondary index by walking every item of the table (see
BENCHMARKS.md, "due-finding").

Usage: python bench/moto_server.py -H 127.0.0.1 -p PORT (moto_server's options).
"""

import copy
import sys

import moto.dynamodb.models as models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main

_original = DynamoDBBackend.transact_write_items


class _NoTableCopy:
    """`copy` as seen by moto.dynamodb.models: tables are not deep-copied
    (the caller below backs up the touched items instead)."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


models.copy = _NoTableCopy()


def _key_of(backend, op):
    table_name = op.get("TableName")
    if not table_name or table_name not in backend.tables:
        return None
    table = backend.tables[table_name]
    if "Item" in op:
        attrs = op["Item"]
        if table.hash_key_attr not in attrs:
            return None
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            if table.range_key_attr not in attrs:
                return None
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return table_name, key
    if "Key" in op:
        return table_name, op["Key"]
    return None


def transact_write_items(self, transact_items):
    backup = []
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            found = _key_of(self, op)
            if found is None:
                continue
            table_name, key = found
            current = self.get_item(table_name, key)
        except Exception:
            # Malformed request: the original raises its own error below,
            # before changing anything.
            continue
        backup.append((table_name, key, copy.deepcopy(current)))
    try:
        return _original(self, transact_items)
    except Exception:
        # The original "restored" the (uncopied) table objects: a no-op.
        # Put the touched items back as they were.
        for table_name, key, item in reversed(backup):
            table = self.get_table(table_name)
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            if item is None:
                table.delete_item(hash_value, range_value)
            elif range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item
        raise


DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
