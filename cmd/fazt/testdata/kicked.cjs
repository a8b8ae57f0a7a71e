// Drives transport/web/assets/fazt.js through a kick whose close frame is
// lost (see TestBrowserClientKnowsAKickWithoutItsCloseFrame). Usage: node
// --experimental-websocket kicked.cjs <fazt.js path> <ws url>. It says
// "ready" and then its client id once subscribed, and its result half a
// second after its connection ends.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const states = [];
setTimeout(() => { console.log(JSON.stringify({ ok: false, error: "timed out", states })); process.exit(1); }, 20000);
const fazt = new Fazt(url, {
  minDelay: 20,
  onState: (s, code, reason) => {
    states.push(s + (code ? " " + code + " " + reason : ""));
    if (s === "disconnected") setTimeout(() => { console.log(JSON.stringify({ ok: true, states })); process.exit(0); }, 500);
  },
});
fazt.subscribe("room", () => {}, { onSubscribed: () => { console.log("ready"); console.log(fazt.clientId); } });
