// A small automerge-repo 2.5.6 sync server for interop tests: `node server.mjs PORT`.
// Listens on 127.0.0.1 only (PORT 0 picks a free port), keeps documents in memory, and prints
// `ready <port>` on stdout once it accepts connections.
import { WebSocketServer } from "ws";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket";

const port = Number(process.argv[2] ?? "0");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: node server.mjs PORT (got ${process.argv[2]})`);
  process.exit(2);
}

const socketServer = new WebSocketServer({ host: "127.0.0.1", port });
const repo = new Repo({
  network: [new WebSocketServerAdapter(socketServer)],
  peerId: `js-sync-server-${process.pid}`,
  // Like a sync server: never push documents to peers that did not ask for them.
  sharePolicy: async () => false,
});

socketServer.on("listening", () => {
  console.log(`ready ${socketServer.address().port}`);
});

const shutdown = () => {
  repo.shutdown();
  socketServer.close();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// Exit with the parent test: stdin closes when the test drops its end.
process.stdin.on("end", shutdown);
process.stdin.resume();
