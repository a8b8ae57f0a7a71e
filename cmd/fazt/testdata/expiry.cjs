// Drives transport/web/assets/fazt.js on a private channel whose tokens
// expire (see TestBrowserClientRenewsExpiredTokens). Usage: node
// --experimental-websocket expiry.cjs <fazt.js path> <ws url> <secret>
// <message count>
const Fazt = require(process.argv[2]);
const [url, secret, total] = [process.argv[3], process.argv[4], Number(process.argv[5])];

const sign = require("./jwt.cjs").signer(secret);

const got = [];
let tokens = 0, connects = 0, fixedError = null;
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, got: got.length })); process.exit(1); };
setTimeout(() => fail("timed out"), 30000);

const fazt = new Fazt(url, { onState: (s) => { if (s === "connected") connects++; }, minDelay: 20 });
// Each token expires one to two seconds after it is made (exp has whole
// seconds): the server ends the subscription then, and the client joins
// again with a fresh one from its last offset.
const token = () => {
  tokens++;
  return sign({ channel: "private-feed", client: fazt.clientId, exp: Math.floor(Date.now() / 1000) + 2 });
};
let ready = 0;
const hello = () => { if (++ready === 2) console.log("ready"); };
fazt.subscribe("private-feed", { offset: 0, token }, (data, f) => {
  if (f.offset !== got.length + 1) fail(`offset ${f.offset} after ${got.length}`);
  got.push(f.offset);
  if (got.length === total) {
    console.log(JSON.stringify({ ok: true, got: got.length, tokens, connects, fixedError }));
    fazt.close();
    process.exit(0);
  }
}, { onSubscribed: () => { if (tokens === 1) { hello(); fixed(); } }, onError: (e) => fail("refused: " + e.message) });
// A token given as a string cannot be renewed: the subscription ends,
// and onError says why. Signed once connected, so that it is still good
// when the subscribe arrives.
function fixed() {
  fazt.subscribe("private-fixed", { token: sign({ channel: "private-fixed", exp: Math.floor(Date.now() / 1000) + 2 }) }, () => {},
    { onSubscribed: hello, onError: (e) => { fixedError = e.code; } });
}
