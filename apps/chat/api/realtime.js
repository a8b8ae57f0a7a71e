// Who may do what in the chat app.
const { clean } = require("./lib/text");
const { mayUse } = require("./lib/access");

// admin-* channels are for moderators: the WebSocket URL must carry the
// admin token, e.g. ws://chat.localhost:8080/_ws?token=chat-admin-token.
exports.onSubscribe = function (client, channel) {
  if (!mayUse(channel, client.query.token)) {
    throw new Error("admin channels need ?token= on the WebSocket URL");
  }
  return true;
};

// Chat lines are {text, name}: text trimmed and cut to maxTextLength
// characters; a line with nothing left is dropped. Only moderators write
// to admin-* channels.
exports.onPublish = function (client, channel, data) {
  if (!mayUse(channel, client.query.token)) {
    throw new Error("admin channels need ?token= on the WebSocket URL");
  }
  if (data === null || typeof data !== "object" || typeof data.text !== "string") {
    throw new Error('chat messages look like {"text": "..."}');
  }
  const text = clean(data.text);
  if (!text) return null;
  // A client id begins with its connection's time: its random end tells
  // clients apart.
  return { text, name: clean(data.name, 40) || client.id.slice(-6), at: Date.now() };
};
