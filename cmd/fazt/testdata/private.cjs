// Drives transport/web/assets/fazt.js on a private channel (see
// TestBrowserClientRenewsTokens). Usage: node --experimental-websocket
// private.cjs <fazt.js path> <ws url> <secret> <message count>
const Fazt = require(process.argv[2]);
const [url, secret, total] = [process.argv[3], process.argv[4], Number(process.argv[5])];

const sign = require("./jwt.cjs").signer(secret);

const got = [];
let tokens = 0, connects = 0;
const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg, got: got.length })); process.exit(1); };
setTimeout(() => fail("timed out"), 30000);

const fazt = new Fazt(url, { onState: (s) => { if (s === "connected") connects++; }, minDelay: 20 });
// Each token is bound to the client id of the connection it is for: the
// first one is no good after a reconnect, which gets a new id.
// The fetch at the reconnect fails once, as on a flaky network: the
// subscription is kept, and the token asked for again.
let tokenErrors = 0;
const token = () => {
  tokens++;
  if (tokens === 2) return Promise.reject(new Error("network down"));
  return Promise.resolve(sign({ channel: "private-feed", client: fazt.clientId }));
};
fazt.subscribe("private-feed", { offset: 0, token }, (data, f) => {
  if (f.offset !== got.length + 1) fail(`offset ${f.offset} after ${got.length}`);
  got.push(f.offset);
  if (got.length === total / 2) fazt.ws.close(4999);
  if (got.length === total) {
    console.log(JSON.stringify({ ok: true, got: got.length, tokens, connects, tokenErrors }));
    fazt.close();
    process.exit(0);
  }
}, { onSubscribed: () => { if (connects === 1) console.log("ready"); }, onError: (e) => {
  if (e.message !== "network down") fail("refused: " + e.message);
  if (e.retrying !== true) fail("a rejoin's failed token does not say the subscription is kept");
  tokenErrors++;
} });
