// Drives transport/web/assets/fazt.js through a connection that goes
// silent without closing (see TestBrowserClientLeavesASilentConnection).
// Usage: node --experimental-websocket silent.cjs <fazt.js path> <ws url>
// <message count>. It prints "ready" once subscribed, "silence" once it has
// half the messages (the test then stops the path), and its result.
const Fazt = require(process.argv[2]);
const url = process.argv[3];
const total = Number(process.argv[4]);

const got = [];
const states = [];
let connects = 0;
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, got: got.length, states })); process.exit(1); };
setTimeout(() => fail("timed out"), 30000);

const fazt = new Fazt(url, {
  minDelay: 20,
  silenceMargin: 1000,
  onState: (s, code, reason) => { states.push(s + (code ? " " + code + " " + reason : "")); if (s === "connected") connects++; },
});
fazt.subscribe("feed", { offset: 0 }, (data, f) => {
  if (f.offset !== got.length + 1) fail(`offset ${f.offset} after ${got.length}`);
  got.push(f.offset);
  if (got.length === total / 2) console.log("silence");
  if (got.length === total) {
    console.log(JSON.stringify({ ok: true, got: got.length, connects, states }));
    fazt.close();
    process.exit(0);
  }
}, { onSubscribed: () => { if (connects === 1) console.log("ready"); } });
