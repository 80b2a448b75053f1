// JavaScript's blob checkpoint store (@azure/eventhubs-checkpointstore-blob, pinned in
// package.json) as a command, for the store-level interoperability tests (tests/js_peer.rs): it
// reads what this crate's store wrote and writes what this crate's store then reads.
//
// Usage: node store.js STORAGE_CONNECTION_STRING CONTAINER NAMESPACE EVENT_HUB CONSUMER_GROUP
//                      COMMAND [JSON]
//
//   list-ownership            prints the ownership records as JSON
//   list-checkpoints          prints the checkpoints as JSON
//   claim JSON                claims [{partitionId, ownerId, etag?}]: prints the records won
//   update-checkpoint JSON    writes {partitionId, offset, sequenceNumber}
"use strict";

const { BlobCheckpointStore } = require("@azure/eventhubs-checkpointstore-blob");
const { ContainerClient } = require("@azure/storage-blob");

async function main() {
  const [storage, container, namespace, hub, group, command, json] = process.argv.slice(2);
  const store = new BlobCheckpointStore(new ContainerClient(storage, container));
  const scope = { fullyQualifiedNamespace: namespace, eventHubName: hub, consumerGroup: group };
  let result;
  switch (command) {
    case "list-ownership":
      result = await store.listOwnership(namespace, hub, group);
      break;
    case "list-checkpoints":
      result = await store.listCheckpoints(namespace, hub, group);
      break;
    case "claim":
      result = await store.claimOwnership(JSON.parse(json).map((o) => ({ ...scope, ...o })));
      break;
    case "update-checkpoint":
      await store.updateCheckpoint({ ...scope, ...JSON.parse(json) });
      result = "ok";
      break;
    default:
      throw new Error(`unknown command ${command}`);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((err) => {
  process.stderr.write(`store.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
