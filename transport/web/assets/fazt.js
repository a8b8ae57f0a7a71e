// fazt.js: the browser (and Node) client for Fazt realtime.
//
//   const fazt = new Fazt("/_ws");               // or "wss://chat.example.com/_ws"
//   const sub = fazt.subscribe("room", { last: 50 }, (data, msg) => show(data, msg.offset));
//   await fazt.publish("room", { text: "hi" });  // when the app allows client publishes
//   sub.unsubscribe(); fazt.close();
//
// It reconnects by itself (with backoff) and resubscribes each channel from
// the last offset it delivered, with that offset's epoch, so a dropped
// connection or a server restart loses nothing and repeats nothing of what
// the server retains (onSubscribed's frame says `truncated` when retention
// dropped some of what was asked for; broadcasts to every connection are
// live only, and presence joins and leaves too: onMembers gives the list
// again at each rejoin). What
// the app's callbacks throw is reported as uncaught and stops none of it. A
// connection that goes silent (no frame, not even the server's ping, for
// the heartbeat the server announced plus silenceMargin) is given up and
// replaced: a network that vanished without closing the socket, as after
// a laptop's sleep, is noticed.
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
    this.silenceMargin = options.silenceMargin || 10000;
    this.clientId = null;
    this.subs = new Map();      // channel -> subscription
    this.pending = new Map();   // request id -> {resolve, reject}
    this.presenceWatch = new Set(); // of members requests on their way: each sees the presence frames meanwhile
    this.leaving = new Map();   // channel -> promise of its unsubscribe's end: a new join waits for it
    this.leaveEnds = new Set(); // of the ends of the unsubscribes asked on this connection, which its loss ends
    this.nextId = 1;
    this.attempt = 0;
    this.closed = false;
    this.connect();
  }

  // call runs an app's callback fn with the arguments after it. What it
  // throws is reported as uncaught, in a task of its own, and does not
  // stop the client's own work: a reconnect, the joins that follow it.
  function call(fn) {
    if (!fn) return;
    try {
      fn.apply(null, Array.prototype.slice.call(arguments, 1));
    } catch (e) {
      setTimeout(function () { throw e; });
    }
  }

  // fail makes the Error a request is rejected with: code is the server's,
  // or connection_lost (the connection ended before the answer: the
  // request may have been carried out) or not_connected (not sent).
  function fail(message, code, channel) {
    var err = new Error(message);
    err.code = code;
    if (channel) err.channel = channel;
    return err;
  }

  // stamp and since measure time elapsed: the longer of what the wall
  // clock and performance.now() say, since each fails on its own (a
  // system clock set back makes the wall clock's negative; most systems
  // stop performance.now() while they sleep, when a connection dies
  // unseen).
  var mono = typeof performance !== "undefined" && performance.now ? function () { return performance.now(); } : function () { return 0; };
  function stamp() { return { wall: Date.now(), mono: mono() }; }
  function since(t) { return Math.max(Date.now() - t.wall, mono() - t.mono); }

  function absolute(url) {
    if (/^wss?:\/\//.test(url) || typeof location === "undefined") return url;
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
  }

  Fazt.prototype.connect = function () {
    var self = this;
    var ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = function (ev) {
      self.heard = stamp();
      var f = JSON.parse(ev.data);
      if (f.type === "disconnect") ws.said = f; // why, should the close frame itself not arrive
      self.frame(f);
    };
    ws.onclose = function (ev) { self.lost(ws, ev.code, ev.reason); };
    // Until `connected` says the server's heartbeat, its default: a path
    // that dies before then is noticed too.
    this.watch(ws, 30);
  };

  // backoff is the wait before try n (0, 1, ...): doubling from minDelay
  // up to maxDelay, cut at random by up to half.
  Fazt.prototype.backoff = function (n) {
    return Math.min(this.maxDelay, this.minDelay * Math.pow(2, n)) * (0.5 + Math.random() / 2);
  };

  // lost ends the connection ws: its requests fail, and unless the client
  // was closed or kicked (4000), a new connection is tried after a backoff.
  // The backoff starts again only after a connection that lasted maxDelay:
  // a server that accepts and at once closes is backed off from too.
  Fazt.prototype.lost = function (ws, code, reason) {
    if (this.ws !== ws) return;
    var self = this;
    if (code === 1006 && ws.said) {
      // Ended without a close frame (the socket, or the watchdog): the
      // server's word before it says why.
      code = ws.said.code;
      reason = ws.said.reason;
    }
    clearInterval(this.watchdog);
    if (this.upSince && since(this.upSince) >= this.maxDelay) this.attempt = 0;
    // A server going away (a restart) drops its clients together: they
    // start from a longer wait, and so a wider spread (1 to 2 s with the
    // defaults), rather than all come back within 250 ms.
    if (code === 1001) this.attempt = Math.max(this.attempt, 3);
    this.upSince = null;
    this.ws = null;
    this.clientId = null;
    // Each says how the connection ended: 1009, a frame over the server's
    // limit (the request that sent it was not carried out: do not send it
    // again as it was).
    this.pending.forEach(function (p) {
      var err = fail("connection closed before the answer (" + code + (reason ? " " + reason : "") + ")", "connection_lost");
      err.closeCode = code;
      err.closeReason = reason;
      p.reject(err);
    });
    this.pending.clear();
    // The server ended every subscription of the connection: no
    // unsubscribe waits for its next try.
    Array.from(this.leaveEnds).forEach(function (end) { end(); });
    if (!this.closed && code !== 4000) { // closed by us, or kicked
      setTimeout(function () { if (!self.closed) self.connect(); }, this.backoff(this.attempt++));
    }
    call(this.onState, "disconnected", code, reason);
  };

  // watch gives up on ws when no frame has come for the server's heartbeat
  // (seconds) plus silenceMargin: the server pings every heartbeat, so
  // silence means the path is gone, which TCP may not notice for minutes.
  Fazt.prototype.watch = function (ws, heartbeat) {
    var self = this;
    var limit = heartbeat * 1000 + this.silenceMargin;
    clearInterval(this.watchdog);
    this.heard = stamp();
    this.watchdog = setInterval(function () {
      if (self.ws !== ws || since(self.heard) <= limit) return;
      // Its handlers go first: a close handshake on a dead path can take
      // as long as TCP does.
      ws.onmessage = ws.onclose = null;
      try { ws.close(); } catch (e) { /* closing already */ }
      self.lost(ws, 1006, "no frame for " + Math.round(limit / 1000) + " s");
    }, Math.min(5000, limit / 4));
  };

  Fazt.prototype.send = function (frame) {
    if (this.ws && this.ws.readyState === 1 && this.clientId) this.ws.send(JSON.stringify(frame));
  };

  Fazt.prototype.request = function (frame) {
    var self = this;
    return new Promise(function (resolve, reject) {
      if (!self.ws || self.ws.readyState !== 1 || !self.clientId) return reject(fail("not connected", "not_connected"));
      frame.id = self.nextId++;
      var text;
      try {
        text = JSON.stringify(frame);
      } catch (e) { // a BigInt, a cycle: not sent
        return reject(fail("cannot send as JSON: " + e.message, "bad_request", frame.channel));
      }
      self.pending.set(frame.id, { resolve: resolve, reject: reject });
      self.ws.send(text);
    });
  };

  Fazt.prototype.frame = function (f) {
    var p = f.id !== undefined && this.pending.get(f.id);
    if (p) this.pending.delete(f.id);
    switch (f.type) {
      case "connected":
        this.upSince = stamp();
        this.clientId = f.client_id;
        if (typeof f.heartbeat === "number") this.watch(this.ws, f.heartbeat);
        var self = this;
        this.subs.forEach(function (s) { s.retries = 0; self.join(s); });
        call(this.onState, "connected", f.client_id);
        return;
      case "ping":
        this.send({ type: "pong" });
        return;
      case "message": {
        var s = f.channel && this.subs.get(f.channel);
        if (!f.channel) { this.subs.forEach(function (s) { call(s.onAll, f.data, f); }); return; }
        // Not before this subscription's own `subscribed`: frames of an
        // earlier subscription to the channel may still be on their way.
        if (!s || !s.ready || (s.offset !== null && f.offset <= s.offset)) return; // never twice
        s.offset = f.offset;
        if (f.epoch) s.epoch = f.epoch; // a channel's first message names its epoch
        call(s.handler, f.data, f);
        return;
      }
      case "subscribed": {
        var sub = this.subs.get(f.channel);
        if (sub && f.id === sub.joinId) {
          sub.ready = sub.joined = true;
          sub.retries = 0;
          sub.epoch = f.epoch;
          if (f.epoch_changed) sub.offset = null;
          // Nothing to replay: resume after the head, so that what is sent
          // while a reconnect is under way is not lost.
          if (f.replay === 0 && (sub.offset === null || f.offset > sub.offset)) sub.offset = f.offset;
          // A replay from {last} or {since}: a join before its first
          // message resumes where it starts, not from a start counted
          // anew from a later head.
          else if (sub.offset === null) sub.offset = f.offset - f.replay;
          call(sub.onSubscribed, f);
          // Presence is live only: what joined or left while this
          // connection was not there is not replayed, so the list is
          // asked for again at every join.
          if (sub.onMembers) this.resync(sub);
        }
        break;
      }
      case "unsubscribed": {
        if (p) break; // the reply to our unsubscribe
        // The server ended the subscription: its token expired. Only a
        // subscription whose `subscribed` has come can be the one it
        // ended; one still joining was asked for after it.
        var es = this.subs.get(f.channel);
        if (!es || !es.ready) return;
        es.askedOn = null; // the server holds nothing of it until it joins again
        if (typeof es.start.token === "function") {
          this.join(es); // with a fresh token, from the last offset delivered: nothing is missed
          return;
        }
        this.subs.delete(f.channel);
        this.tell(es, fail(f.channel + ": the subscription ended (" + f.reason + ")", f.reason, f.channel));
        return;
      }
      case "presence": {
        this.presenceWatch.forEach(function (w) { w(f); });
        var ps = this.subs.get(f.channel);
        // Not before this subscription's own `subscribed`, as messages:
        // an earlier subscription to the channel may still get some.
        if (ps && ps.ready) call(ps.onPresence, f.event, f.client);
        return;
      }
      case "error":
        if (p) { p.reject(fail(f.error, f.code, f.channel)); return; }
        call(this.onError, f);
        return;
    }
    if (p) p.resolve(f);
  };

  // resync gives s's onMembers the channel's members, asked for once s
  // has joined, unless by the answer s is no longer that join (its
  // channel's subscription, on this connection, joined and not since
  // joined again). A refusal that may pass is asked again, backing off.
  Fazt.prototype.resync = function (s, tries) {
    var self = this, ws = this.ws, joinId = s.joinId;
    var same = function () { return self.current(s, ws) && s.ready && s.joinId === joinId; };
    this.members(s.channel).then(function (list) {
      if (same()) call(s.onMembers, list);
    }, function (err) {
      if (!same() || err.code === "connection_lost") return;
      if (transient[err.code]) {
        setTimeout(function () { if (same()) self.resync(s, (tries || 0) + 1); }, self.backoff(tries || 0));
        return;
      }
      self.tell(s, err);
    });
  };

  // tell gives err, which ended or troubles the subscription s, to s's
  // onError, or when it has none to the client's, as an error frame
  // would be: {type: "error", channel, code, error}, so that it is never
  // lost in silence.
  Fazt.prototype.tell = function (s, err) {
    if (s.onError) call(s.onError, err);
    else call(this.onError, { type: "error", channel: s.channel, code: err.code, error: err.message, retrying: err.retrying });
  };

  Fazt.prototype.join = function (s) {
    var self = this;
    s.ready = false;
    var leaving = this.leaving.get(s.channel);
    if (leaving) {
      // The server ends the earlier subscription first: a subscribe
      // meanwhile would be refused as a second one.
      var on = this.ws;
      leaving.then(function () { if (self.current(s, on) && !s.ready) self.join(s); });
      return;
    }
    var token = s.start.token;
    if (typeof token === "function") {
      // Asked again at every join, so that a reconnect has a fresh one.
      var ws = this.ws;
      Promise.resolve().then(token).then(function (t) {
        if (self.current(s, ws)) self.joinWith(s, t);
      }, function (err) {
        if (!self.current(s, ws)) return;
        // A subscription that has joined before is kept through a failed
        // token fetch (a reconnect is when the network is flaky): tried
        // again, backing off. One that never joined is dropped, as after
        // a refusal, so that the app may subscribe again from onError.
        if (s.joined) {
          self.rejoinLater(s, ws);
        } else {
          self.subs.delete(s.channel);
        }
        self.tell(s, Object.assign(err instanceof Error ? err : new Error(String(err)), { channel: s.channel, retrying: !!s.joined }));
      });
      return;
    }
    this.joinWith(s, token);
  };

  // current says whether s is still its channel's subscription, and ws
  // the connection: what was asked for on an older one is moot.
  Fazt.prototype.current = function (s, ws) {
    return this.ws === ws && this.subs.get(s.channel) === s;
  };

  // rejoinLater joins s again on ws after a backoff, unless by then it is
  // no longer current, or has joined.
  Fazt.prototype.rejoinLater = function (s, ws) {
    var self = this;
    setTimeout(function () { if (self.current(s, ws) && !s.ready) self.join(s); }, this.backoff(s.retries++));
  };

  Fazt.prototype.joinWith = function (s, token) {
    var frame = { type: "subscribe", channel: s.channel };
    if (s.offset !== null) { frame.offset = s.offset; if (s.epoch) frame.epoch = s.epoch; }
    else if (s.start.offset !== undefined) { frame.offset = s.start.offset; if (s.start.epoch) frame.epoch = s.start.epoch; }
    else if (s.start.last !== undefined) frame.last = s.start.last;
    else if (s.start.since !== undefined) frame.since = s.start.since;
    if (token) frame.token = token;
    var self = this, ws = this.ws;
    s.askedOn = ws; // the connection on which the server may hold it
    this.request(frame).catch(function (err) {
      if (err.code === "connection_lost" || err.code === "not_connected" || self.subs.get(s.channel) !== s) return; // joined again on the next connection
      if (transient[err.code]) { // tried again on this connection, backing off; a new one joins anew
        if (s.askedOn === ws) s.askedOn = null; // refused: the server holds nothing of it
        self.rejoinLater(s, ws);
        return;
      }
      self.subs.delete(s.channel);
      self.tell(s, err);
    });
    s.joinId = frame.id;
  };

  // Refusals that a later try may not meet.
  var transient = { unavailable: true, internal: true, rate_limited: true };

  // subscribe joins channel. start is {} (live only), {offset: n} (with
  // the epoch that offset belongs to, when known: {offset: n, epoch: e}),
  // {last: k} or {since: unixMs}, plus {token} for private channels; it
  // applies to the first join only: reconnects resume from the last
  // delivered offset. token may be a function returning the token (or a
  // promise of it): it is called at every join, reconnects included, and
  // when the server ends the subscription because its token expired, so
  // that short-lived tokens can be fetched anew (the join then resumes
  // from the last offset delivered). With a token that is not a function,
  // an expired token ends the subscription, and onError gets an error
  // whose code is "token_expired". handler(data, frame) gets
  // each message once, in order. A channel is subscribed once at a time:
  // a second subscribe before the first's unsubscribe throws.
  Fazt.prototype.subscribe = function (channel, start, handler, hooks) {
    if (typeof start === "function") { hooks = handler; handler = start; start = {}; }
    if (this.subs.has(channel)) throw new Error("already subscribed to " + channel);
    hooks = hooks || {};
    var s = { channel: channel, start: start || {}, handler: handler, offset: null, epoch: null, retries: 0,
              onSubscribed: hooks.onSubscribed, onPresence: hooks.onPresence, onMembers: hooks.onMembers,
              onError: hooks.onError, onAll: hooks.onAll };
    this.subs.set(channel, s);
    if (this.clientId) this.join(s);
    var self = this;
    return {
      // A handle whose subscription ended (unsubscribed, or refused) leaves
      // a later subscription to the channel alone.
      unsubscribe: function () {
        if (self.subs.get(channel) !== s) return Promise.resolve();
        self.subs.delete(channel);
        // Not asked for on this connection (its join waits for a leave,
        // or for its token, or for the connection): the server holds
        // nothing of it to end.
        if (!self.ws || s.askedOn !== self.ws) return Promise.resolve();
        return self.leave(channel);
      },
      // Where a later page load may resume: subscribe(channel, {offset, epoch}).
      get offset() { return s.offset; },
      get epoch() { return s.epoch; }
    };
  };

  // leave ends the server's subscription to channel on this connection,
  // asking again, backing off, while the refusal may pass (unavailable,
  // internal, rate_limited); the promise it returns, which a new join of
  // the channel waits for, resolves when the server has answered for good
  // or the connection has ended (and with it the subscriptions). A channel
  // has one leave at a time: a subscription made meanwhile is not asked
  // for until it ends, so there is nothing of it to leave before then.
  Fazt.prototype.leave = function (channel) {
    var self = this, ws = this.ws, tries = 0;
    var done = new Promise(function (resolve) {
      var end = function () { self.leaveEnds.delete(end); resolve(); };
      var ask = function () {
        if (self.ws !== ws) return end();
        self.request({ type: "unsubscribe", channel: channel }).then(end, function (err) {
          if (transient[err.code] && self.ws === ws) setTimeout(ask, self.backoff(tries++));
          else end();
        });
      };
      self.leaveEnds.add(end);
      ask();
    });
    this.leaving.set(channel, done);
    done.then(function () { self.leaving.delete(channel); });
    return done;
  };

  // publish sends data to channel; it resolves with {offset, epoch}. It
  // rejects with the server's error, or with code not_connected (it was
  // not sent) or connection_lost (sent, but the connection ended before
  // the answer: it may have been published).
  Fazt.prototype.publish = function (channel, data) {
    return this.request({ type: "publish", channel: channel, data: data });
  };

  // members lists a presence channel's members, sorted. The server's
  // reply is not ordered with the channel's presence frames, so the joins
  // and leaves received while it was on its way are applied to it, in
  // order; apply later ones (onPresence) to the list as set operations.
  Fazt.prototype.members = function (channel) {
    var self = this, seen = [];
    var watch = function (f) { if (f.channel === channel) seen.push(f); };
    this.presenceWatch.add(watch);
    var done = function () { self.presenceWatch.delete(watch); };
    return this.request({ type: "members", channel: channel }).then(function (f) {
      done();
      var set = new Set(f.members);
      seen.forEach(function (p) { if (p.event === "join") set.add(p.client); else if (p.event === "leave") set.delete(p.client); });
      return Array.from(set).sort();
    }, function (err) { done(); throw err; });
  };

  Fazt.prototype.close = function () {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.ws) this.ws.close(1000);
  };

  if (typeof module === "object" && module.exports) module.exports = Fazt;
  else root.Fazt = Fazt;
})(typeof self !== "undefined" ? self : this);
