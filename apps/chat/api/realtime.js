// Who may do what in the chat app.
const config = require("./config.json");
const { clean } = require("./lib/text");

// admin-* channels are for moderators: the WebSocket URL must carry the
// admin token, e.g. ws://chat.localhost:8080/_ws?token=chat-admin-token.
exports.onSubscribe = function (client, channel) {
  if (channel.startsWith("admin-") && client.query.token !== config.adminToken) {
    throw new Error("admin channels need ?token= on the WebSocket URL");
  }
  return true;
};

// Chat lines are {text, name}: text trimmed and cut to maxTextLength
// characters; a line with nothing left is dropped.
exports.onPublish = function (client, channel, data) {
  if (data === null || typeof data !== "object" || typeof data.text !== "string") {
    throw new Error('chat messages look like {"text": "..."}');
  }
  const text = clean(data.text);
  if (!text) return null;
  return { text, name: clean(data.name, 40) || client.id.slice(0, 6), at: Date.now() };
};
