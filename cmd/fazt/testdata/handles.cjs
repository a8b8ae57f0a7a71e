// Drives transport/web/assets/fazt.js's subscription handles (see
// TestBrowserClientHandles). Usage: node --experimental-websocket
// handles.cjs <fazt.js path> <ws url>. "room" holds 3 messages and "other"
// 2 when it starts; it says "ready" once it is live on "room" again, and
// its result when message 4 comes.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const res = { ok: true };
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, res })); process.exit(1); };
setTimeout(() => fail("timed out"), 15000);

const fazt = new Fazt(url, { minDelay: 20 });
const first = [];
const a = fazt.subscribe("room", { offset: 0 }, (data, f) => {
  first.push(f.offset);
  if (first.length < 3) return;
  res.first = first;
  res.epoch = a.epoch; // where a later page load could resume from, with a.offset
  res.offset = a.offset;
  a.unsubscribe().then(() => {
    const b = fazt.subscribe("room", { offset: a.offset, epoch: a.epoch }, (data, f) => {
      res.live = f.offset;
      console.log(JSON.stringify(res));
      fazt.close();
      process.exit(0);
    }, {
      onSubscribed: (f) => {
        res.resumed = { replay: f.replay, epoch_changed: !!f.epoch_changed };
        // The first handle's subscription has ended: it must leave b's alone.
        a.unsubscribe().then(() => console.log("ready"));
      },
    });
  });
});
try {
  fazt.subscribe("room", () => {});
  res.second = "allowed";
} catch (e) {
  res.second = e.message;
}
// An offset of a history that no longer exists: the whole of the new one.
const other = [];
fazt.subscribe("other", { offset: 2, epoch: "not-this-one" }, (data, f) => { other.push(f.offset); res.other = other; },
  { onSubscribed: (f) => { res.otherChanged = !!f.epoch_changed; } });
// A token function that fails at the first join drops the subscription,
// which may then be made again (a rejoin's is tried again: private.cjs).
fazt.subscribe("private-x", { token: () => Promise.reject(new Error("no token for you")) }, () => {}, {
  onError: (e) => {
    res.tokenError = e.message + (e.retrying === false ? "" : " (retrying: " + e.retrying + ")");
    try {
      fazt.subscribe("private-x", { token: () => Promise.reject(new Error("still none")) }, () => {}, { onError: () => {} });
      res.again = "allowed";
    } catch (err) {
      res.again = err.message;
    }
  },
});
