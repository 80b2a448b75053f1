"""One Python consumer, as a user runs it: azure-eventhub's EventHubConsumerClient with
azure-eventhub-checkpointstoreblob-aio's BlobCheckpointStore (versions pinned in requirements.txt),
receiving real events from the local Event Hubs endpoint (tools/eventhubs-local).

Usage: consumer.py STORAGE_CONNECTION_STRING CONTAINER AMQP_ADDRESS EVENT_HUB CONSUMER_GROUP
                   INTERVAL_SECONDS OWNERSHIP_EXPIRATION_SECONDS CHECKPOINT_EVERY

AMQP_ADDRESS is the endpoint's `amqp://127.0.0.1:PORT`. The consumer starts from the start of a
partition with no checkpoint and checkpoints every CHECKPOINT_EVERY-th event (by sequence number).
It prints one line per fact, marked `@node `, the same lines as the Rust processor nodes of
tests/processor.rs: `claimed P`, `event P SEQ`, `checkpoint P SEQ` once the store acknowledged it,
`lost P WHY`, `note WHAT` (errors the client reports and recovers from), and `stopped` after a
graceful stop, which closing stdin asks for.
"""

import asyncio
import sys

import azure.eventhub._pyamqp._decode as amqp_decode
import azure.eventhub._pyamqp._transport as amqp_transport
import azure.eventhub._pyamqp.aio._transport_async as amqp_transport_async
from azure.eventhub.aio import EventHubConsumerClient
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

# Test-only shim. azure-eventhub <= 5.15.1 decodes a performative by fixed field positions and
# expects every field present with a value, while AMQP lets a peer omit trailing null fields and
# says a null field means its default (fe2o3-amqp, the endpoint's AMQP stack, omits them). Giving
# each decoded frame its full length, with the spec's defaults where a field is null, is what the
# unreleased upstream fix (azure-sdk-for-python PR 47660) amounts to. Keys: the performative's
# descriptor code; values: its fields' defaults (None: no default), in order.
UINT_MAX = 4294967295
DEFAULTS = {
    # open: container-id, hostname, max-frame-size, channel-max, idle-time-out, outgoing-locales,
    # incoming-locales, offered-capabilities, desired-capabilities, properties
    0x10: [None, None, UINT_MAX, 65535, None, None, None, None, None, None],
    # begin: remote-channel, next-outgoing-id, incoming-window, outgoing-window, handle-max,
    # offered-capabilities, desired-capabilities, properties
    0x11: [None, None, None, None, UINT_MAX, None, None, None],
    # attach: name, handle, role, snd-settle-mode (mixed), rcv-settle-mode (first), source,
    # target, unsettled, incomplete-unsettled, initial-delivery-count, max-message-size,
    # offered-capabilities, desired-capabilities, properties
    0x12: [None, None, None, 2, 0, None, None, None, False, None, None, None, None, None],
    # flow: next-incoming-id, incoming-window, next-outgoing-id, outgoing-window, handle,
    # delivery-count, link-credit, available, drain, echo, properties
    0x13: [None, None, None, None, None, None, None, None, False, False, None],
    # transfer: handle, delivery-id, delivery-tag, message-format, settled, more, rcv-settle-mode,
    # state, resume, aborted, batchable (then the payload)
    0x14: [None, None, None, None, None, False, None, None, False, False, False],
    # disposition: role, first, last, settled, state, batchable
    0x15: [None, None, None, False, None, False],
    # detach: handle, closed, error; end: error; close: error
    0x16: [None, False, None],
    0x17: [None],
    0x18: [None],
    # sasl-mechanisms, sasl-init, sasl-challenge, sasl-response, sasl-outcome
    0x40: [None],
    0x41: [None, None, None],
    0x42: [None],
    0x43: [None],
    0x44: [None, None],
}
# Where an error (condition, description, info) sits in detach, end and close, which Python
# indexes the same way.
ERROR_AT = {0x16: 2, 0x17: 0, 0x18: 0}
_decode_frame = amqp_decode.decode_frame


def _complete_decode_frame(data):
    frame_type, fields = _decode_frame(data)
    defaults = DEFAULTS.get(frame_type)
    if defaults is not None:
        payload = fields.pop() if frame_type == 0x14 else None
        fields.extend([None] * (len(defaults) - len(fields)))
        fields = [d if f is None else f for f, d in zip(fields, defaults)]
        if frame_type == 0x14:
            fields.append(payload)
        error = ERROR_AT.get(frame_type)
        if error is not None and isinstance(fields[error], list):
            fields[error] = fields[error] + [None] * (3 - len(fields[error]))
    return frame_type, fields


amqp_transport.decode_frame = _complete_decode_frame
amqp_transport_async.decode_frame = _complete_decode_frame

# The endpoint is plain AMQP on loopback: UseDevelopmentEmulator turns TLS off, and the namespace
# stays `localhost` (the Rust client's too), so both languages write the same checkpoint paths.
EVENTHUBS = "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true"


def say(line):
    print(f"@node {line}", flush=True)


async def main():
    storage, container, amqp, hub, group, interval, expiration, every = sys.argv[1:9]
    every = int(every)
    port = amqp.rsplit(":", 1)[1]
    store = BlobCheckpointStore.from_connection_string(storage, container)
    client = EventHubConsumerClient.from_connection_string(
        EVENTHUBS,
        consumer_group=group,
        eventhub_name=hub,
        checkpoint_store=store,
        custom_endpoint_address=f"sb://127.0.0.1:{port}",
        load_balancing_interval=float(interval),
        partition_ownership_expiration_interval=float(expiration),
        load_balancing_strategy="greedy",
    )

    async def on_event(context, event):
        seq = event.sequence_number
        say(f"event {context.partition_id} {seq}")
        if seq % every == every - 1:
            try:
                await context.update_checkpoint(event)
                say(f"checkpoint {context.partition_id} {seq}")
            except Exception as err:  # reported, as the Rust nodes do
                say(f"checkpoint-failed {context.partition_id} {seq} {err}")

    async def on_partition_initialize(context):
        say(f"claimed {context.partition_id}")

    async def on_partition_close(context, reason):
        say(f"lost {context.partition_id} {reason}")

    async def on_error(context, err):
        where = f"partition {context.partition_id}" if context else "load balancing"
        say(f"note {where}: {type(err).__name__}: {err}")

    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    receiving = asyncio.ensure_future(
        client.receive(
            on_event=on_event,
            on_partition_initialize=on_partition_initialize,
            on_partition_close=on_partition_close,
            on_error=on_error,
            starting_position="-1",
        )
    )
    await asyncio.wait([stdin_closed, receiving], return_when=asyncio.FIRST_COMPLETED)
    await client.close()
    await receiving
    await store.close()
    say("stopped")


asyncio.run(main())
