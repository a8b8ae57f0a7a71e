// Drives transport/web/assets/fazt.js through a proxy that closes its
// first connections just after `connected` (see
// TestBrowserClientBacksOffAServerThatDropsIt). Usage: node
// --experimental-websocket backoff.cjs <fazt.js path> <ws url>. It says
// "ready" once subscribed on a connection that stays, and its result when
// message 1 has come and each of its publishes has its answer.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const res = { ok: true, gaps: [], codes: [], uncaught: 0, errors: [] };
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, res })); process.exit(1); };
setTimeout(() => fail("timed out"), 20000);
// What the app's callbacks throw is reported as uncaught, and the client
// goes on.
process.on("uncaughtException", (e) => { if (e.message === "onState broke") res.uncaught++; else fail("uncaught " + e.stack); });

let lostAt = 0;
// The result, once message 1 has come and every publish has its answer.
const done = () => {
  if (res.data === undefined || res.codes.length < 5) return;
  console.log(JSON.stringify(res));
  fazt.close();
  process.exit(0);
};
const fazt = new Fazt(url, {
  minDelay: 20,
  onError: (e) => res.errors.push(e),
  onState: (s) => {
    if (s === "connected") {
      if (lostAt) res.gaps.push(Date.now() - lostAt);
      // Sent at once: on a connection the proxy closes, its answer never
      // comes.
      fazt.publish("echo", 1).then(() => res.codes.push("published"), (e) => res.codes.push(e.code)).then(done);
    } else {
      lostAt = Date.now();
    }
    throw new Error("onState broke");
  },
});
fazt.publish("echo", 0).then(() => fail("published before connected"), (e) => { res.early = e.code; });
let joins = 0;
fazt.subscribe("feed", (data, f) => {
  res.data = data;
  res.joins = joins;
  done();
}, { onSubscribed: () => { if (++joins === 1) console.log("ready"); } });
