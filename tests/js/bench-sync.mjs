// The P5 workload of `scripts/bench` on automerge-repo 2.5.6: two repos (a counselor's device
// and a client's) syncing through the sync server of server.mjs, in one node process.
//   node bench-sync.mjs PORT
// A starts ALLIANCE_BENCH_PLANS plans shaped like Alliance's (members, devices, one goal); B
// fetches them all; then each side makes ALLIANCE_BENCH_EDITS edits per plan (check-ins and
// goal words, alternately, as the Alliance run does), and both wait until every plan has the
// same heads on both sides. Prints `result elapsed_s <s> peak_kib <KiB> cpu_s <s>`: the
// wall-clock of the workload (start-up excluded), this process's peak resident memory and its
// CPU time.
import { randomUUID } from "node:crypto";
import * as Automerge from "@automerge/automerge";
import { Repo, updateText, decodeHeads } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

const port = process.argv[2];
if (!port) {
  console.error("usage: node bench-sync.mjs PORT");
  process.exit(2);
}
const PLANS = Number(process.env.ALLIANCE_BENCH_PLANS ?? "100");
const EDITS = Number(process.env.ALLIANCE_BENCH_EDITS ?? "20");
const timeoutMs = Number(process.env.ALLIANCE_JS_TIMEOUT_MS ?? "300000");
const deadline = setTimeout(() => {
  console.error(`timed out after ${timeoutMs} ms`);
  process.exit(3);
}, timeoutMs);

const url = `ws://127.0.0.1:${port}`;
const repoA = new Repo({ network: [new WebSocketClientAdapter(url)], peerId: `bench-a-${process.pid}` });
const repoB = new Repo({ network: [new WebSocketClientAdapter(url)], peerId: `bench-b-${process.pid}` });
const str = s => new Automerge.ImmutableString(s);
const counselor = randomUUID();
const client = randomUUID();
const counselorDevice = randomUUID().replaceAll("-", "");
const clientDevice = randomUUID().replaceAll("-", "");

const sameHeads = (a, b) => {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((head, i) => head === y[i]);
};

// Resolves once the server holds every handle's current heads.
function acknowledged(repo, handles) {
  const pending = new Map(handles.map(h => [h.documentId, h]));
  return new Promise(resolve => {
    const check = ({ documentId, syncState }) => {
      const handle = pending.get(documentId);
      if (!handle) return;
      if (sameHeads(syncState.sharedHeads, decodeHeads(handle.heads()))) {
        pending.delete(documentId);
        if (pending.size === 0) {
          repo.synchronizer.off("sync-state", check);
          resolve();
        }
      }
    };
    repo.synchronizer.on("sync-state", check);
  });
}

function checkin(by, day) {
  return {
    by: str(by),
    at: Date.now(),
    local_date: str(`2024-01-${String((day % 28) + 1).padStart(2, "0")}`),
    tz_offset_min: 60,
    gas_level: (day % 5) - 2,
    mood: (day % 5) + 1,
    craving: day % 4,
    note: str(`day ${day}: slept ${5 + (day % 4)} hours, walked after lunch`),
  };
}

const started = performance.now();
const handlesA = [];
const goals = [];
for (let n = 0; n < PLANS; n++) {
  const now = Date.now();
  const plan = randomUUID();
  const handle = repoA.create();
  handle.change(doc => {
    doc.schema = 1;
    doc.plan_id = str(plan);
    doc.created_at = now;
    doc.title = `Plan ${String(n).padStart(3, "0")}`;
    doc.members = {
      [counselor]: { role: str("counselor"), name: str("Dana"), added_at: now },
      [client]: { role: str("client"), name: str("Sam"), added_at: now },
    };
    doc.devices = {
      [counselorDevice]: { member_id: str(counselor), label: str("creator"), added_at: now },
      [clientDevice]: { member_id: str(client), label: str("client device"), added_at: now },
    };
    doc.goals = {};
  });
  const goal = randomUUID();
  handle.change(doc => {
    doc.goals[goal] = {
      proposed_by: str(counselor),
      created_at: now,
      rank: str(String(now).padStart(15, "0")),
      client_words: "Sleep through the night",
      clinical_statement: "",
      life_area: str(""),
      status: str("proposed"),
      objectives: {},
      interventions: {},
      gas: { levels: {}, weight: 1.0 },
      agreements: {},
      checkins: {},
    };
  });
  handlesA.push(handle);
  goals.push(goal);
}
const phase = what => {
  if (process.env.ALLIANCE_BENCH_VERBOSE) {
    console.error(`${what} at ${((performance.now() - started) / 1000).toFixed(2)} s`);
  }
};
phase("created");
await acknowledged(repoA, handlesA);
phase("acknowledged");
const handlesB = await Promise.all(handlesA.map(h => repoB.find(h.url)));
phase("found");

const statement = n =>
  `Reduce nights with less than ${5 + (n % 3)} hours of sleep; review sleep diary at session ${n}`;
const words = n => `Sleep through the night at least ${3 + (n % 4)} times a week (take ${n})`;
for (let p = 0; p < PLANS; p++) {
  const goal = goals[p];
  for (let n = 0; n < EDITS; n++) {
    if (n % 2 === 0) {
      handlesA[p].change(doc => {
        doc.goals[goal].checkins[randomUUID()] = checkin(counselor, n);
      });
      handlesB[p].change(doc => updateText(doc, ["goals", goal, "client_words"], words(n)));
    } else {
      handlesA[p].change(doc =>
        updateText(doc, ["goals", goal, "clinical_statement"], statement(n)),
      );
      handlesB[p].change(doc => {
        doc.goals[goal].checkins[randomUUID()] = checkin(client, n);
      });
    }
  }
}

phase("edited");
// Converged when every plan has the same heads on both devices.
await new Promise(resolve => {
  const poll = () => {
    const done = handlesA.every((a, i) => sameHeads(a.heads(), handlesB[i].heads()));
    if (done) resolve();
    else setTimeout(poll, 2);
  };
  poll();
});
const elapsed = (performance.now() - started) / 1000;
const peakKib = process.resourceUsage().maxRSS;
clearTimeout(deadline);
const cpu = process.cpuUsage();
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(`result elapsed_s ${elapsed} peak_kib ${peakKib} cpu_s ${cpuSeconds}`);
await Promise.race([
  Promise.all([repoA.shutdown(), repoB.shutdown()]),
  new Promise(resolve => setTimeout(resolve, 2000)),
]);
process.exit(0);
