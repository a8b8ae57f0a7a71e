// Drives transport/web/assets/fazt.js through a refused rejoin and an
// unsubscribe refused for the inbound rate (see
// TestBrowserClientTellsARefusedRejoin). Usage: node
// --experimental-websocket rejoin.cjs <fazt.js path> <ws url> <secret>.
// It says "ready" once its second subscription to "room" has joined, and
// its result when message 1 of "room" comes.
const Fazt = require(process.argv[2]);
const [url, secret] = [process.argv[3], process.argv[4]];
const sign = require("./jwt.cjs").signer(secret);

const res = { ok: true, errors: [] };
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, res })); process.exit(1); };
setTimeout(() => fail("timed out"), 20000);

let connects = 0;
const fazt = new Fazt(url, {
  minDelay: 20,
  onError: (e) => res.errors.push(e),
  onState: (s) => {
    if (s !== "connected") return;
    if (++connects === 1) first();
  },
});

function first() {
  // A token bound to this connection's client id, given as a string: the
  // rejoin after a reconnect, with a new id, is refused, and the
  // subscription, which has no onError, is told to the client's.
  fazt.subscribe("private-a", { token: sign({ channel: "private-a", client: fazt.clientId }) }, () => {}, {
    onSubscribed: () => {
      if (connects !== 1) return;
      // The inbound rate (1 frame a second) refuses the unsubscribe that
      // follows at once: it is asked again until it passes, and the
      // subscribe after it waits for it, instead of being refused as a
      // second subscription.
      const room = fazt.subscribe("room", () => fail("a message of the first subscription"), {
        onSubscribed: () => {
          room.unsubscribe().then(() => { res.left = true; });
          fazt.subscribe("room", (data, f) => {
            res.data = data;
            res.connects = connects;
            console.log(JSON.stringify(res));
            fazt.close();
            process.exit(0);
          }, { onSubscribed: () => { if (connects === 1) { res.leftFirst = !!res.left; fazt.ws.close(4999); } } });
        },
      });
    },
  });
}
// Said once the client has joined "room" again on its second connection:
// the refused private rejoin has been told by then, or never will be.
const check = setInterval(() => {
  if (connects === 2 && fazt.subs.get("room") && fazt.subs.get("room").ready) {
    clearInterval(check);
    res.privateKept = fazt.subs.has("private-a");
    console.log("ready");
  }
}, 10);
