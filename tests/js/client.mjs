// An automerge-repo 2.5.6 client for interop tests:
//   node client.mjs PORT automerge:<id> [NEW_TITLE [ACTOR_HEX]]
// Finds the plan through ws://127.0.0.1:PORT, prints {"title", "client_words"} of the plan and of
// its first goal (by rank) as one JSON line, then, when NEW_TITLE is given, rewrites the title
// with updateText and waits until the server has acknowledged the change. ACTOR_HEX makes the
// edit under that Automerge actor (a device id enrolled in the plan), so Alliance's rules
// accept it; without it the edit is made by a random actor. With ALLIANCE_JS_CHECKIN="GOAL_ID
// MEMBER_ID" the edit is a check-in on that goal by that member, its note NEW_TITLE, instead.
import * as Automerge from "@automerge/automerge";
import { Repo, updateText, decodeHeads } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

const [port, url, newTitle, actor] = process.argv.slice(2);
if (!port || !url) {
  console.error("usage: node client.mjs PORT automerge:<id> [NEW_TITLE [ACTOR_HEX]]");
  process.exit(2);
}
const timeoutMs = Number(process.env.ALLIANCE_JS_TIMEOUT_MS ?? "15000");
const deadline = setTimeout(() => {
  console.error(`timed out after ${timeoutMs} ms`);
  process.exit(3);
}, timeoutMs);

// ALLIANCE_TOKEN: the device's relay token, as the `token` query parameter (a browser cannot
// set WebSocket headers).
const token = process.env.ALLIANCE_TOKEN;
const relayUrl = token
  ? `ws://127.0.0.1:${port}/?token=${encodeURIComponent(token)}`
  : `ws://127.0.0.1:${port}`;

const repo = new Repo({
  network: [new WebSocketClientAdapter(relayUrl)],
  peerId: `js-client-${process.pid}`,
});

let handle;
try {
  handle = await repo.find(url);
} catch (error) {
  console.error(`find failed: ${error.message}`);
  process.exit(4);
}

const doc = handle.doc();
const goals = Object.entries(doc.goals ?? {}).sort(([idA, a], [idB, b]) =>
  String(a.rank).localeCompare(String(b.rank)) || idA.localeCompare(idB),
);
const firstGoal = goals.length > 0 ? goals[0][1] : undefined;
console.log(
  JSON.stringify({
    title: doc.title ?? null,
    client_words: firstGoal?.client_words ?? null,
  }),
);

if (newTitle !== undefined) {
  const acknowledged = new Promise(resolve => {
    const sameHeads = (a, b) =>
      a.length === b.length && [...a].sort().every((head, i) => head === [...b].sort()[i]);
    repo.synchronizer.on("sync-state", ({ documentId, syncState }) => {
      if (documentId !== handle.documentId) return;
      if (sameHeads(syncState.sharedHeads, decodeHeads(handle.heads()))) resolve();
    });
  });
  const checkIn = process.env.ALLIANCE_JS_CHECKIN;
  const edit = plan => {
    if (!checkIn) {
      updateText(plan, ["title"], newTitle);
      return;
    }
    const [goal, by] = checkIn.split(" ");
    const text = value => new Automerge.ImmutableString(value);
    plan.goals[goal].checkins[crypto.randomUUID()] = {
      by: text(by),
      at: Date.now(),
      local_date: text(new Date().toISOString().slice(0, 10)),
      tz_offset_min: 0,
      mood: 7,
      note: text(newTitle),
    };
  };
  if (actor) {
    // Same document, edited as the enrolled device.
    handle.update(doc => Automerge.change(Automerge.clone(doc, { actor }), edit));
  } else {
    handle.change(edit);
  }
  await acknowledged;
  console.log(JSON.stringify({ edited: true }));
}

clearTimeout(deadline);
await repo.shutdown();
process.exit(0);
