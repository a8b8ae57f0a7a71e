// Text rules shared by the HTTP handler and the hooks: one place decides
// what a chat line may be.
const config = require("../config.json");

// clean returns s trimmed, with runs of whitespace folded and cut to max
// characters (code points: one is never cut in half, though a sequence of
// them that shows as one, a flag, may be); "" for anything that is not a
// string.
function clean(s, max) {
  if (typeof s !== "string") return "";
  const limit = max || config.maxTextLength;
  const t = s.replace(/\s+/g, " ").trim();
  if (t.length <= limit) return t;
  return Array.from(t).slice(0, limit).join("");
}

module.exports = { clean };
