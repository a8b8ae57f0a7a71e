// Drives transport/web/assets/fazt.js through an unsubscribe refused for
// the inbound rate, and subscriptions of its channel meanwhile (see
// TestBrowserClientLeavesInOrder). Usage: node --experimental-websocket
// leaves.cjs <fazt.js path> <ws url>. It says "ready" once its third
// subscription to "room" has joined, and its result when that
// subscription gets message 1.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const res = { ok: true, errors: [] };
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, res })); process.exit(1); };
setTimeout(() => fail("timed out"), 20000);

const fazt = new Fazt(url, { minDelay: 20, onError: (e) => res.errors.push(e) });
const first = fazt.subscribe("room", () => fail("a message of the first subscription"), {
  onSubscribed: () => {
    // Refused for the rate (one frame a second): asked again later.
    first.unsubscribe();
    // Waits for that unsubscribe, and is left before it joins: nothing
    // of it is on the server to end.
    const second = fazt.subscribe("room", () => fail("a message of the second subscription"), {});
    second.unsubscribe();
    // Joins once the first's unsubscribe has ended.
    fazt.subscribe("room", (data) => {
      res.data = data;
      console.log(JSON.stringify(res));
      fazt.close();
      process.exit(0);
    }, { onSubscribed: () => console.log("ready") });
  },
});
