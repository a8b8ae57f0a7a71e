// Text rules shared by the HTTP handler and the hooks: one place decides
// what a chat line may be.
const config = require("../config.json");

// clean returns s trimmed, with runs of whitespace folded and cut to max
// characters (code points: an emoji is not cut in half); "" for anything
// that is not a string.
function clean(s, max) {
  if (typeof s !== "string") return "";
  const limit = max || config.maxTextLength;
  const t = s.replace(/\s+/g, " ").trim();
  if (t.length <= limit) return t;
  return Array.from(t).slice(0, limit).join("");
}

module.exports = { clean };
