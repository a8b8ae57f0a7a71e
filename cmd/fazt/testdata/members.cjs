// Drives transport/web/assets/fazt.js's members() (see
// TestBrowserClientMembersCountsPresenceMeanwhile). Usage: node
// --experimental-websocket members.cjs <fazt.js path> <ws url> <other
// client id>. The other client is a member of "presence-room" already.
const Fazt = require(process.argv[2]);
const [url, other] = [process.argv[3], process.argv[4]];

const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg })); process.exit(1); };
setTimeout(() => fail("timed out"), 15000);

const fazt = new Fazt(url, { minDelay: 20 });
const told = [];
console.log("ready");
fazt.subscribe("presence-room", () => {}, {
  onPresence: (event, client) => told.push(event + ":" + client),
  onSubscribed: () => {
    const asked = fazt.members("presence-room");
    // Presence frames that come while the request is on its way (made
    // here, before its reply can): the reply may or may not count them.
    fazt.frame({ type: "presence", channel: "presence-room", event: "join", client: "ghost" });
    fazt.frame({ type: "presence", channel: "presence-room", event: "leave", client: other });
    fazt.frame({ type: "presence", channel: "presence-other", event: "join", client: "elsewhere" });
    asked.then((members) => {
      console.log(JSON.stringify({ ok: true, members, self: fazt.clientId, told }));
      fazt.close();
      process.exit(0);
    }, (e) => fail(e.message));
  },
});
