// Drives transport/web/assets/fazt.js through a kick whose close frame is
// lost (see TestBrowserClientKnowsAKickWithoutItsCloseFrame). Usage: node
// --experimental-websocket kicked.cjs <fazt.js path> <ws url>. It says
// "ready" and then its client id once subscribed, and its result half a
// second after its connection ends.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const res = { ok: true, states: [] };
setTimeout(() => { console.log(JSON.stringify({ ok: false, error: "timed out", res })); process.exit(1); }, 20000);
const fazt = new Fazt(url, {
  minDelay: 20,
  silenceMargin: 500, // the server's heartbeat is 1 s here
  onState: (s, code, reason) => {
    res.states.push(s + (code ? " " + code + " " + reason : ""));
    if (s === "disconnected") setTimeout(() => { console.log(JSON.stringify(res)); process.exit(0); }, 500);
  },
});
fazt.subscribe("room", () => {}, {
  onSubscribed: () => {
    fazt.publish("room", 1n).then(() => { res.bigInt = "sent"; }, (e) => { res.bigInt = e.code; });
    res.pending = fazt.pending.size;
    console.log("ready");
    console.log(fazt.clientId);
  },
});
