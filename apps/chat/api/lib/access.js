// Who may read and write admin-* channels: moderators, who give the admin
// token (on the WebSocket URL as ?token=, to the HTTP API as
// "Authorization: Bearer <token>"). One place decides, for the hooks and
// the HTTP handler alike.
const config = require("../config.json");

// The token in config.json is the one Fazt's docs show: anyone may know
// it. Replace it before the app faces a network; an empty one admits no
// one (rather than every request without a token).
const published = "chat-admin-token";
if (config.adminToken === published) {
  console.warn("chat: config.json's adminToken is the one Fazt's docs publish: replace it before this app faces a network");
}

function isAdminToken(token) {
  return typeof config.adminToken === "string" && config.adminToken !== "" && token === config.adminToken;
}

function isAdminChannel(channel) {
  return typeof channel === "string" && channel.startsWith("admin-");
}

// mayUse says whether a caller holding token may read or write channel.
function mayUse(channel, token) {
  return !isAdminChannel(channel) || isAdminToken(token);
}

// private-* channels are joined with a token that the server checks on
// the WebSocket (app.json's secret signs them). This HTTP API has no such
// token to check, and fazt.realtime reads and writes any channel of the
// app: here only moderators reach them, as they do admin-* channels.
function isPrivateChannel(channel) {
  return typeof channel === "string" && channel.startsWith("private-");
}

// mayUseOverHTTP is mayUse for the HTTP API.
function mayUseOverHTTP(channel, token) {
  return mayUse(channel, token) && (!isPrivateChannel(channel) || isAdminToken(token));
}

// bearer returns the token of an "Authorization: Bearer <token>" header
// (the scheme's name in any case, as the server API takes it).
function bearer(headers) {
  const m = /^bearer +(.+)$/i.exec((headers && headers.authorization) || "");
  return m ? m[1] : "";
}

module.exports = { isAdminChannel, isPrivateChannel, mayUse, mayUseOverHTTP, bearer };
