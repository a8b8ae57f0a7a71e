// HTTP API of the chat app, at http://chat.localhost:8080/api/...
//
//   POST /api/messages {"text": "hi", "name": "ann", "channel": "room"}
//        broadcasts the message; answers 201 {channel, offset, epoch, seq}
//   GET  /api/messages?channel=room&last=20
//        the newest messages from the channel's history
//   GET  /api/stats
//        channels and the number of open connections
const { clean } = require("./lib/text");

module.exports = async function (req) {
  if (req.path === "/api/messages" && req.method === "POST") {
    const body = req.json || {};
    const text = clean(body.text);
    if (!text) {
      return { status: 400, json: { error: "text is empty", code: "bad_request" } };
    }
    const channel = typeof body.channel === "string" ? body.channel : "room";
    const name = clean(body.name, 40) || "anonymous";
    const sent = fazt.realtime.broadcast(channel, { text, name, at: Date.now() });
    console.log("message from", name, "on", channel, "offset", sent.offset);
    return { status: 201, json: sent };
  }
  if (req.path === "/api/messages" && req.method === "GET") {
    const last = Math.min(Number(req.query.last) || 50, 1000);
    return fazt.realtime.history(req.query.channel || "room", { last }).messages;
  }
  if (req.path === "/api/stats") {
    return { channels: fazt.realtime.channels({ limit: 100 }), connections: fazt.realtime.count() };
  }
  return { status: 404, json: { error: "no endpoint " + req.method + " " + req.path, code: "not_found" } };
};
