// fazt.js: the browser (and Node) client for Fazt realtime.
//
//   const fazt = new Fazt("/_ws");               // or "wss://chat.example.com/_ws"
//   const sub = fazt.subscribe("room", { last: 50 }, (data, msg) => show(data, msg.offset));
//   await fazt.publish("room", { text: "hi" });  // when the app allows client publishes
//   sub.unsubscribe(); fazt.close();
//
// It reconnects by itself (with backoff) and resubscribes each channel from
// the last offset it delivered, with that offset's epoch, so a dropped
// connection or a server restart loses nothing and repeats nothing.
(function (root) {
  "use strict";

  function Fazt(url, options) {
    if (!(this instanceof Fazt)) return new Fazt(url, options);
    options = options || {};
    this.url = absolute(url || "/_ws");
    this.onState = options.onState || function () {};
    this.onError = options.onError || function () {};
    this.minDelay = options.minDelay || 250;
    this.maxDelay = options.maxDelay || 10000;
    this.clientId = null;
    this.subs = new Map();      // channel -> subscription
    this.pending = new Map();   // request id -> {resolve, reject}
    this.nextId = 1;
    this.attempt = 0;
    this.closed = false;
    this.connect();
  }

  function absolute(url) {
    if (/^wss?:\/\//.test(url) || typeof location === "undefined") return url;
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
  }

  Fazt.prototype.connect = function () {
    var self = this;
    var ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = function (ev) { self.frame(JSON.parse(ev.data)); };
    ws.onclose = function (ev) {
      self.ws = null;
      self.clientId = null;
      self.pending.forEach(function (p) { p.reject(new Error("connection closed")); });
      self.pending.clear();
      self.onState("disconnected", ev.code, ev.reason);
      if (self.closed || ev.code === 4000) return; // closed by us, or kicked
      var delay = Math.min(self.maxDelay, self.minDelay * Math.pow(2, self.attempt++));
      setTimeout(function () { if (!self.closed) self.connect(); }, delay * (0.5 + Math.random() / 2));
    };
  };

  Fazt.prototype.send = function (frame) {
    if (this.ws && this.ws.readyState === 1 && this.clientId) this.ws.send(JSON.stringify(frame));
  };

  Fazt.prototype.request = function (frame) {
    var self = this;
    return new Promise(function (resolve, reject) {
      if (!self.ws || self.ws.readyState !== 1 || !self.clientId) return reject(new Error("not connected"));
      frame.id = self.nextId++;
      self.pending.set(frame.id, { resolve: resolve, reject: reject });
      self.ws.send(JSON.stringify(frame));
    });
  };

  Fazt.prototype.frame = function (f) {
    var p = f.id !== undefined && this.pending.get(f.id);
    if (p) this.pending.delete(f.id);
    switch (f.type) {
      case "connected":
        this.attempt = 0; // reset here, not on open: a server that opens and closes is still backed off from
        this.clientId = f.client_id;
        this.onState("connected", f.client_id);
        var self = this;
        this.subs.forEach(function (s) { self.join(s); });
        return;
      case "ping":
        this.send({ type: "pong" });
        return;
      case "message": {
        var s = f.channel && this.subs.get(f.channel);
        if (!f.channel) { this.subs.forEach(function (s) { if (s.onAll) s.onAll(f.data, f); }); return; }
        // Not before this subscription's own `subscribed`: frames of an
        // earlier subscription to the channel may still be on their way.
        if (!s || !s.ready || (s.offset !== null && f.offset <= s.offset)) return; // never twice
        s.offset = f.offset;
        if (f.epoch) s.epoch = f.epoch; // a channel's first message names its epoch
        s.handler(f.data, f);
        return;
      }
      case "subscribed": {
        var sub = this.subs.get(f.channel);
        if (sub && f.id === sub.joinId) {
          sub.ready = true;
          sub.epoch = f.epoch;
          if (f.epoch_changed) sub.offset = null;
          // Nothing to replay: resume after the head, so that what is sent
          // while a reconnect is under way is not lost.
          if (f.replay === 0 && (sub.offset === null || f.offset > sub.offset)) sub.offset = f.offset;
          if (sub.onSubscribed) sub.onSubscribed(f);
        }
        break;
      }
      case "presence": {
        var ps = this.subs.get(f.channel);
        if (ps && ps.onPresence) ps.onPresence(f.event, f.client);
        return;
      }
      case "error":
        if (p) { p.reject(Object.assign(new Error(f.error), { code: f.code })); return; }
        this.onError(f);
        return;
    }
    if (p) p.resolve(f);
  };

  Fazt.prototype.join = function (s) {
    var self = this;
    s.ready = false;
    var token = s.start.token;
    if (typeof token === "function") {
      // Asked again at every join, so that a reconnect has a fresh one.
      var ws = this.ws;
      Promise.resolve().then(token).then(function (t) {
        if (self.ws === ws && self.subs.get(s.channel) === s) self.joinWith(s, t);
      }, function (err) {
        if (s.onError) s.onError(err);
      });
      return;
    }
    this.joinWith(s, token);
  };

  Fazt.prototype.joinWith = function (s, token) {
    var frame = { type: "subscribe", channel: s.channel };
    if (s.offset !== null) { frame.offset = s.offset; if (s.epoch) frame.epoch = s.epoch; }
    else if (s.start.offset !== undefined) frame.offset = s.start.offset;
    else if (s.start.last !== undefined) frame.last = s.start.last;
    else if (s.start.since !== undefined) frame.since = s.start.since;
    if (token) frame.token = token;
    var self = this;
    this.request(frame).catch(function (err) {
      if (!err.code || self.subs.get(s.channel) !== s) return; // the connection closed: joined again on the next
      if (transient[err.code]) { // tried again, as after a reconnect
        setTimeout(function () { if (self.subs.get(s.channel) === s && !s.ready) self.join(s); },
          self.minDelay * (1 + Math.random()));
        return;
      }
      if (s.prev) self.subs.set(s.channel, s.prev); // a second subscribe to a channel leaves the first
      else self.subs.delete(s.channel);
      if (s.onError) s.onError(err);
    });
    s.joinId = frame.id;
  };

  // Refusals that a later try may not meet.
  var transient = { unavailable: true, internal: true, rate_limited: true };

  // subscribe joins channel. start is {} (live only), {offset: n},
  // {last: k} or {since: unixMs}, plus {token} for private channels; it
  // applies to the first join only: reconnects resume from the last
  // delivered offset. token may be a function returning the token (or a
  // promise of it): it is called at every join, reconnects included, so
  // that short-lived tokens can be fetched anew. handler(data, frame) gets
  // each message once, in order.
  Fazt.prototype.subscribe = function (channel, start, handler, hooks) {
    if (typeof start === "function") { hooks = handler; handler = start; start = {}; }
    hooks = hooks || {};
    var s = { channel: channel, start: start || {}, handler: handler, offset: null, epoch: null,
              onSubscribed: hooks.onSubscribed, onPresence: hooks.onPresence, onError: hooks.onError, onAll: hooks.onAll };
    s.prev = this.subs.get(channel);
    this.subs.set(channel, s);
    if (this.clientId) this.join(s);
    var self = this;
    return {
      unsubscribe: function () {
        if (self.subs.get(channel) === s) self.subs.delete(channel);
        return self.request({ type: "unsubscribe", channel: channel }).catch(function () {});
      },
      get offset() { return s.offset; }
    };
  };

  // publish sends data to channel; it resolves with {offset, epoch}.
  Fazt.prototype.publish = function (channel, data) {
    return this.request({ type: "publish", channel: channel, data: data });
  };

  // members lists a presence channel's members.
  Fazt.prototype.members = function (channel) {
    return this.request({ type: "members", channel: channel }).then(function (f) { return f.members; });
  };

  Fazt.prototype.close = function () {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  };

  if (typeof module === "object" && module.exports) module.exports = Fazt;
  else root.Fazt = Fazt;
})(typeof self !== "undefined" ? self : this);
