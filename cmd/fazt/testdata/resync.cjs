// Drives transport/web/assets/fazt.js's onMembers (see
// TestBrowserClientGivesMembersAgainAfterAReconnect). Usage: node
// --experimental-websocket resync.cjs <fazt.js path> <ws url>. It prints
// the first list of presence-room's members, then "closed" once it has
// dropped its connection (the test changes the members then, while it is
// away), then its result: the list given after it joined again.
const Fazt = require(process.argv[2]);
const url = process.argv[3];

const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg })); process.exit(1); };
setTimeout(() => fail("timed out"), 20000);

const fazt = new Fazt(url, { minDelay: 20 });
const lists = [];
console.log("ready");
fazt.subscribe("presence-room", () => {}, {
  onMembers: (members) => {
    lists.push(members);
    if (lists.length === 1) {
      console.log(JSON.stringify({ members, self: fazt.clientId }));
      // Away for at least two seconds (half of minDelay), for the test
      // to change the channel's members meanwhile.
      fazt.minDelay = fazt.maxDelay = 4000;
      fazt.ws.close();
      console.log("closed");
      return;
    }
    console.log(JSON.stringify({ ok: true, members, self: fazt.clientId }));
    fazt.close();
    process.exit(0);
  },
  onError: (e) => fail(e.message),
});
