// Drives transport/web/assets/fazt.js against a live server (see
// TestBrowserClientResumes). Usage: node --experimental-websocket client.cjs
// <fazt.js path> <ws url> <message count>
const Fazt = require(process.argv[2]);
const url = process.argv[3];
const total = Number(process.argv[4]);

const got = [];
let drops = 0, connects = 0;
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, got: got.length })); process.exit(1); };
setTimeout(() => fail("timed out"), 30000);

const fazt = new Fazt(url, { onState: (s) => { if (s === "connected") connects++; }, minDelay: 20 });
// Live only, on a channel that gets its first messages while the
// connection is down: they must come once it is back.
const quiet = [];
fazt.subscribe("quiet", (data, f) => { quiet.push(f.offset); });
fazt.subscribe("feed", { offset: 0 }, (data, f) => {
  if (f.offset !== got.length + 1) fail(`offset ${f.offset} after ${got.length}`);
  if (data.n !== f.offset) fail(`offset ${f.offset} carries ${JSON.stringify(data)}`);
  got.push(f.offset);
  // Drop the connection twice mid-stream, as a flaky network would.
  if (got.length === Math.floor(total / 3) || got.length === Math.floor(2 * total / 3)) {
    drops++;
    fazt.ws.close(4999);
  }
  if (got.length === total) {
    fazt.publish("feed-echo", { done: true }).then(
      () => fail("publish allowed in an app without client_publish"),
      (err) => {
        if (err.code !== "not_allowed") fail("publish error " + err.code);
        console.log(JSON.stringify({ ok: true, got: got.length, drops, connects, quiet }));
        fazt.close();
        process.exit(0);
      });
  }
}, { onSubscribed: (f) => { if (connects === 1) console.log("ready"); } });
