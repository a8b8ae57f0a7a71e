// An HS256 JWT signer for the browser client's test scripts, as an app's
// backend would make the tokens of private channels.
const crypto = require("node:crypto");

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

// signer returns a function that signs claims with secret.
exports.signer = (secret) => (claims) => {
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return head + "." + crypto.createHmac("sha256", secret).update(head).digest("base64url");
};
