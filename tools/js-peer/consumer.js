// One JavaScript consumer, as a user runs it: @azure/event-hubs' EventHubConsumerClient with
// @azure/eventhubs-checkpointstore-blob's BlobCheckpointStore (versions pinned in package.json,
// installed by scripts/js-peer.sh), receiving real events from the local Event Hubs endpoint
// (tools/eventhubs-local).
//
// Usage: node consumer.js STORAGE_CONNECTION_STRING CONTAINER AMQP_ADDRESS EVENT_HUB
//                         CONSUMER_GROUP INTERVAL_SECONDS OWNERSHIP_EXPIRATION_SECONDS
//                         CHECKPOINT_EVERY
//
// The same lines as the other nodes of the fleet tests (tests/fleet), marked `@node `:
// `claimed P`, `event P SEQ`, `checkpoint P SEQ` once the store acknowledged it, `lost P WHY`,
// `note WHAT` (errors the client reports and recovers from), and `stopped` after a graceful
// stop, which closing stdin asks for. A partition without a checkpoint starts at its first event.
"use strict";

const { EventHubConsumerClient, earliestEventPosition } = require("@azure/event-hubs");
const { BlobCheckpointStore } = require("@azure/eventhubs-checkpointstore-blob");
const { ContainerClient } = require("@azure/storage-blob");

function say(line) {
  process.stdout.write(`@node ${line}\n`);
}

async function main() {
  const [storage, container, amqp, hub, group, interval, expiration, every] = process.argv.slice(2);
  const port = amqp.split(":").pop();
  // UseDevelopmentEmulator: plain AMQP; the port in Endpoint is where it connects, and the
  // namespace stays `localhost`, as the Rust and Python clients name it: the same checkpoint
  // paths for all three.
  const eventhubs = `Endpoint=sb://localhost:${port};SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true`;
  const store = new BlobCheckpointStore(new ContainerClient(storage, container));
  const client = new EventHubConsumerClient(group, eventhubs, hub, store, {
    loadBalancingOptions: {
      strategy: "greedy",
      updateIntervalInMs: Number(interval) * 1000,
      partitionOwnershipExpirationIntervalInMs: Number(expiration) * 1000,
    },
  });
  const checkpointEvery = Number(every);
  const subscription = client.subscribe(
    {
      processInitialize: async (context) => say(`claimed ${context.partitionId}`),
      processEvents: async (events, context) => {
        for (const event of events) {
          const seq = event.sequenceNumber;
          say(`event ${context.partitionId} ${seq}`);
          if (seq % checkpointEvery === checkpointEvery - 1) {
            try {
              await context.updateCheckpoint(event);
              say(`checkpoint ${context.partitionId} ${seq}`);
            } catch (err) {
              say(`checkpoint-failed ${context.partitionId} ${seq} ${err}`);
            }
          }
        }
      },
      processClose: async (reason, context) => say(`lost ${context.partitionId} ${reason}`),
      processError: async (err, context) => {
        const where = context && context.partitionId !== "" ? `partition ${context.partitionId}` : "load balancing";
        say(`note ${where}: ${err.name}: ${err.message}`);
      },
    },
    { startPosition: earliestEventPosition, maxBatchSize: 100, maxWaitTimeInSeconds: 1 },
  );
  await new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
    process.stdin.resume();
  });
  await subscription.close();
  await client.close();
  say("stopped");
  // After some faults (a detached link, refused receivers, a cut connection) the closed client
  // leaves handles behind that keep Node running: the stop is done, so end the process once
  // what it said is written (writes to a pipe are asynchronous).
  process.stdout.write("", () => process.exit(0));
}

main().catch((err) => {
  say(`note fatal: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
