// Drives transport/web/assets/fazt.js through a reconnect that comes
// before any message of a {last: 2} replay was delivered (see
// TestBrowserClientRejoinsAReplayNotYetDelivered). Usage: node
// --experimental-websocket lastrejoin.cjs <fazt.js path> <ws url>
// <http url> <admin key>. "room" holds 5 messages when it starts.
const Fazt = require(process.argv[2]);
const [url, http, key] = [process.argv[3], process.argv[4], process.argv[5]];

const got = [];
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, got })); process.exit(1); };
setTimeout(() => fail("timed out"), 15000);

const publish = (data) => fetch(http + "/_api/publish", {
  method: "POST", headers: { authorization: "Bearer " + key, "content-type": "application/json" },
  body: JSON.stringify({ channel: "room", data }),
}).then((r) => { if (!r.ok) fail("publish: " + r.status); });

const fazt = new Fazt(url, { minDelay: 20 });
// The first connection's messages are never delivered: it is lost right
// after `subscribed`, and three more messages are published before the
// next connection is made.
let first = true;
const frame = fazt.frame;
fazt.frame = function (f) { if (!(first && f.type === "message")) frame.call(this, f); };
fazt.subscribe("room", { last: 2 }, (data, f) => {
  got.push(f.offset);
  if (f.offset === 8) {
    console.log(JSON.stringify({ ok: true, got }));
    fazt.close();
    process.exit(0);
  }
}, { onSubscribed: () => {
  if (!first) return;
  const connect = fazt.connect;
  fazt.connect = function () {
    first = false;
    fazt.connect = connect;
    publish(6).then(() => publish(7)).then(() => publish(8)).then(() => connect.call(fazt));
  };
  console.log("ready");
  fazt.ws.close(4999);
} });
