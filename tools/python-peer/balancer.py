"""One Python consumer's load balancing, as azure-eventhub's EventProcessor runs it: its
OwnershipManager over azure-eventhub-checkpointstoreblob-aio's BlobCheckpointStore. The Event Hubs
client is a stand-in that only supplies partition ids; nothing connects to Event Hubs.

Usage: balancer.py CONNECTION_STRING CONTAINER NAMESPACE EVENT_HUB CONSUMER_GROUP OWNER_ID
                   INTERVAL_SECONDS OWNERSHIP_TIMEOUT_SECONDS PARTITIONS [CHECKPOINT_AT]

Prints the sorted owned partition ids as one JSON line per balancing cycle; stops when stdin
closes, releasing nothing (as a processor that stops without closing does). With CHECKPOINT_AT,
after each cycle it checkpoints every partition it owns at that sequence number (and offset), as a
processor that resumed and processed that far would, through the same blob store.
"""

import asyncio
import json
import sys

from azure.eventhub._eventprocessor.common import LoadBalancingStrategy
from azure.eventhub.aio._eventprocessor._ownership_manager import OwnershipManager
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore


class Address:
    def __init__(self, hostname):
        self.hostname = hostname


class StandInClient:
    """What OwnershipManager reads from an EventHubConsumerClient."""

    def __init__(self, namespace, eventhub, partitions):
        self._address = Address(namespace)
        self.eventhub_name = eventhub
        self._partitions = [str(p) for p in range(partitions)]

    async def get_partition_ids(self):
        return self._partitions


async def main():
    (conn, container, namespace, eventhub, group, owner, interval, timeout, partitions) = sys.argv[1:10]
    checkpoint_at = int(sys.argv[10]) if len(sys.argv) > 10 else None
    store = BlobCheckpointStore.from_connection_string(conn, container)
    manager = OwnershipManager(
        StandInClient(namespace, eventhub, int(partitions)),
        group,
        owner,
        store,
        float(timeout),
        LoadBalancingStrategy.GREEDY,
        None,
    )
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with store:
        while not stdin_closed.done():
            try:
                owned = await manager.claim_ownership()
                if checkpoint_at is not None:
                    for partition in owned:
                        await store.update_checkpoint({
                            "fully_qualified_namespace": namespace,
                            "eventhub_name": eventhub,
                            "consumer_group": group,
                            "partition_id": partition,
                            "sequence_number": checkpoint_at,
                            "offset": str(checkpoint_at),
                        })
                print(json.dumps(sorted(owned, key=int)), flush=True)
            except Exception as err:  # a failed cycle is retried, as the processor does
                print(json.dumps({"error": str(err)}), flush=True)
            await asyncio.wait([stdin_closed], timeout=float(interval))


asyncio.run(main())
