// HTTP API of the chat app, at http://chat.localhost:8080/api/...
//
//   POST /api/messages {"text": "hi", "name": "ann", "channel": "room"}
//        broadcasts the message; answers 201 {channel, offset, epoch, seq}
//   GET  /api/messages?channel=room&last=20
//        the newest messages from the channel's history (1 to 1000; 50)
//   GET  /api/stats
//        channels (up to 1000) and the number of open connections
//
// admin-* and private-* channels need "Authorization: Bearer <adminToken>"
// (config.json), and /api/stats lists them only then. Bad input is
// answered 400.
const { clean } = require("./lib/text");
const { mayUseOverHTTP, bearer } = require("./lib/access");

const closed = "admin and private channels need the admin token";

function fail(status, code, error) {
  return { status, json: { error, code } };
}

async function handle(req) {
  const token = bearer(req.headers);
  if (req.path === "/api/messages" && req.method === "POST") {
    // JSON only: a form or a text/plain body is what another site's page
    // can send here without asking (no CORS preflight), with the
    // visitor's cookies and network.
    if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] || "")) {
      return fail(415, "bad_request", "send the message as Content-Type: application/json");
    }
    const body = req.json || {};
    const text = clean(body.text);
    if (!text) return fail(400, "bad_request", "text is empty");
    const channel = body.channel === undefined ? "room" : body.channel;
    if (typeof channel !== "string") return fail(400, "bad_request", "channel must be a string");
    if (!mayUseOverHTTP(channel, token)) return fail(403, "not_allowed", closed);
    const name = clean(body.name, 40) || "anonymous";
    const sent = fazt.realtime.broadcast(channel, { text, name, at: Date.now() });
    console.log("message from", name, "on", channel, "offset", sent.offset);
    return { status: 201, json: sent };
  }
  if (req.path === "/api/messages" && req.method === "GET") {
    const channel = req.query.channel || "room";
    if (!mayUseOverHTTP(channel, token)) return fail(403, "not_allowed", closed);
    const last = req.query.last === undefined ? 50 : Number(req.query.last);
    if (!Number.isInteger(last) || last < 1 || last > 1000) {
      return fail(400, "bad_request", "last must be a whole number from 1 to 1000");
    }
    return fazt.realtime.history(channel, { last }).messages;
  }
  if (req.path === "/api/stats" && req.method === "GET") {
    // channels() gives a page at a time, by name: here the first 1000.
    const channels = fazt.realtime.channels({ limit: 1000 }).filter((c) => mayUseOverHTTP(c.channel, token));
    return { channels, connections: fazt.realtime.count() };
  }
  return fail(404, "not_found", "no endpoint " + req.method + " " + req.path);
}

// A refusal by fazt.realtime (a bad channel name, data too large) is the
// caller's mistake: 400 or 413 with its code, not a 500.
const statusOf = { invalid_channel: 400, bad_request: 400, too_large: 413 };

module.exports = async function (req) {
  try {
    return await handle(req);
  } catch (e) {
    if (e && statusOf[e.code]) return fail(statusOf[e.code], e.code, e.message);
    throw e;
  }
};
