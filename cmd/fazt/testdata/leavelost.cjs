// Drives transport/web/assets/fazt.js through an unsubscribe, refused for
// the inbound rate, whose connection drops while it waits to try again
// (see TestBrowserClientLeavesWithItsConnection). Usage: node
// --experimental-websocket leavelost.cjs <fazt.js path> <ws url>. It says
// "ready" once its second subscription to "room" has joined on the new
// connection, and its result when that subscription gets message 1.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const res = { ok: true, order: [], errors: [], sent: [] };
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, res })); process.exit(1); };
setTimeout(() => fail("timed out"), 20000);

// Counts the refusals of the unsubscribe, to drop the connection just
// after the sixth: the next try is then at least 320 ms away.
let refused = 0;
const request = Fazt.prototype.request;
Fazt.prototype.request = function (frame) {
  res.sent.push(frame.type + " " + frame.channel);
  return request.call(this, frame).catch((err) => {
    if (frame.type === "unsubscribe" && err.code === "rate_limited" && ++refused === 6) setTimeout(drop);
    // Its join refused, and waiting to try again: the server holds
    // nothing of it, and its unsubscribe sends nothing.
    if (frame.type === "subscribe" && frame.channel === "other" && !res.otherLeft) {
      res.otherLeft = true;
      setTimeout(() => other.unsubscribe());
    }
    throw err;
  });
};

let connects = 0, other;
const fazt = new Fazt(url, {
  minDelay: 20,
  onError: (e) => res.errors.push(e),
  onState: (s) => { if (s === "connected" && ++connects === 2) res.order.push("connected"); },
});
// Its join waits for a token that never comes: its unsubscribe has
// nothing on the server to end, and sends nothing.
const waiting = fazt.subscribe("private-x", { token: () => new Promise(() => {}) }, () => {});
const first = fazt.subscribe("room", () => fail("a message of the first subscription"), {
  onSubscribed: () => {
    waiting.unsubscribe().then(() => res.order.push("waiting left"));
    first.unsubscribe().then(() => res.order.push("left"));
    other = fazt.subscribe("other", () => {});
  },
});
function drop() {
  fazt.subscribe("room", (data) => {
    res.data = data;
    console.log(JSON.stringify(res));
    fazt.close();
    process.exit(0);
  }, { onSubscribed: () => console.log("ready") });
  fazt.ws.close(4999);
}
