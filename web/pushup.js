/**
 * pushup.js: the browser client of PushUp, a long-polling publish/subscribe
 * broker. A dependency-free ES module; pushupd serves it at `/pushup.js`.
 *
 * It runs the client protocol of `GET /v1/subscribe` for you: poll, deliver
 * the answer's messages, poll again at once from the answer's cursor. The
 * cursor is what makes delivery exact: each message reaches your callback
 * once, in time order, even across network failures and reconnections to
 * another node, as long as the message is still in the server's cache.
 *
 * ```js
 * import { subscribe } from "https://push.example.com/pushup.js";
 *
 * const sub = subscribe(["tag:go", "tag:js"], (message) => {
 *   console.log(message.time, message.channels, message.data);
 * }, {
 *   onError: (err) => console.warn(`retrying in ${err.retryIn} ms:`, err.message),
 *   onClosed: (err) => console.error("subscription ended:", err.code),
 * });
 * // later
 * sub.unsubscribe();
 * ```
 *
 * Failures: network errors, 5xx, 429 and answers that are not a PushUp
 * answer (a proxy's HTML page, a cut-off body) are retried with exponential
 * backoff and full jitter, capped; `onError` hears of each. When the browser
 * goes offline the poll in flight is dropped (its connection is as good as
 * dead), and when it comes back online the next poll starts at once instead
 * of sleeping out its backoff. A `410
 * channel_closed`, or an error the server says retrying cannot fix (such as
 * `400 invalid_channel`), stops the subscription and is reported once to
 * `onClosed`.
 *
 * @module pushup
 */

/** Default first backoff ceiling, in milliseconds. */
const DEFAULT_BACKOFF_BASE = 1000;
/** Default longest wait between two retries, in milliseconds. */
const DEFAULT_BACKOFF_CAP = 30000;
/**
 * The server's default longest wait (pushupd -max-timeout), in seconds. When
 * no timeout is given the server picks one no longer than this, so the
 * watchdog below waits at least this long.
 */
const SERVER_MAX_TIMEOUT = 120;
/**
 * How much longer than the requested wait an answer may take before the
 * request counts as lost. A connection that died without an error (a laptop
 * lid closed, a NAT entry dropped) would otherwise hang the loop forever.
 */
const WATCHDOG_GRACE_MS = 15000;
/** How much of an unexpected body an error message quotes. */
const PREVIEW_CHARS = 120;
/**
 * How long a new event stream may take to say where it starts (its
 * "cursor" event, the server's first bytes) before it counts as failed: a
 * proxy that buffers responses holds the stream back entirely.
 */
const STREAM_OPEN_TIMEOUT_MS = 10000;
/** Failed streams in a row after which transport "auto" long-polls. */
const STREAM_FAILURES_BEFORE_FALLBACK = 2;
/** Reasons for aborting a poll ourselves, told apart in its error. */
const POLL_TIMEOUT = Symbol("poll timeout");
const WENT_OFFLINE = Symbol("went offline");

/**
 * A message as the server delivers it.
 *
 * @typedef {object} Message
 * @property {string} id Unique message id.
 * @property {number} time Unix time in milliseconds (never goes backwards).
 * @property {string[]} channels Every channel the message was published to,
 *   including ones this subscription does not listen to.
 * @property {*} data The published JSON value.
 */

/**
 * One answer of `GET /v1/subscribe`.
 *
 * @typedef {object} Answer
 * @property {Message[]} messages In time order, each once.
 * @property {string} cursor Where the next poll starts.
 * @property {boolean} more The server had more messages than one answer holds;
 *   the subscription polls again at once.
 * @property {boolean} truncated Messages after the previous position were
 *   evicted from the server's cache before they could be delivered.
 * @property {number} [retry_after_ms] Set by a node that is shutting down
 *   (drain): the client waits this long before its next poll, which the
 *   load balancer sends to another node.
 */

/**
 * Options of {@link subscribe}. Every field is optional.
 *
 * @typedef {object} SubscribeOptions
 * @property {string|number|Date} [since] Where to start: a `cursor` from an
 *   earlier subscription ({@link Subscription#cursor}) to resume exactly
 *   where it stopped; a Unix time in milliseconds (or a Date) for the
 *   messages after it; `"now"` for new messages only; `0` or absent for every
 *   message the server still caches.
 * @property {number} [timeout] Seconds the server may hold each poll open
 *   when nothing arrives (decimals allowed, more than 0, at most the
 *   server's `-max-timeout`). Absent: the server's default (30 s).
 * @property {string|URL} [baseURL] The PushUp server, such as
 *   `"https://push.example.com/"` (a path prefix is kept). Absent: the
 *   server this module was loaded from.
 * @property {(err: PushUpError) => void} [onError] Called when a poll
 *   failed and will be retried in `err.retryIn` milliseconds. Call
 *   `unsubscribe()` here to give up instead.
 * @property {(err: PushUpError) => void} [onClosed] Called once when the
 *   subscription stops because of the server's answer: `410
 *   channel_closed` (every channel was closed; `err.cursor` resumes if they
 *   reopen) or a request error retrying cannot fix (`err.code` says which).
 *   Not called after `unsubscribe()`. Absent: the error goes to the console.
 * @property {(answer: Answer) => void} [onTruncated] Called before the
 *   messages of an answer whose `truncated` flag is set: some messages were
 *   lost to cache eviction, so resynchronise from your backend. Absent: a
 *   console warning.
 * @property {(answer: Answer) => void} [onAnswer] Called after each answer's
 *   messages were delivered, empty answers (a poll that timed out) included:
 *   the connection works, and `answer.cursor` is the position to save.
 * @property {string} [token] A subscriber token (a JWT the application's
 *   backend minted) for private channels. It travels as the `token` query
 *   parameter: a header would cost a CORS preflight per poll.
 * @property {() => (string|Promise<string>)} [getToken] Returns a fresh
 *   token. Called before the first poll when `token` is not given, and
 *   again when the server answers `401 token_expired`; the poll is then
 *   retried once at once, from the same cursor, so nothing is lost.
 * @property {number} [backoffBase=1000] Milliseconds: the n-th retry in a row
 *   waits a random time between 0 and `min(backoffCap, backoffBase * 2^(n-1))`.
 * @property {number} [backoffCap=30000] Milliseconds: the longest wait
 *   between retries, `Retry-After` included.
 * @property {"longpoll"|"sse"|"auto"} [transport="longpoll"] How messages
 *   arrive. `"longpoll"`: a loop of `GET /v1/subscribe`. `"sse"`: one
 *   server-sent event stream, `GET /v1/events` (a request per stream, not
 *   per message; it ends every few minutes and resumes from the cursor).
 *   `"auto"`: the stream where the browser has `EventSource`, long polling
 *   otherwise, and long polling from then on when a stream fails twice in a
 *   row before it got going (a buffering proxy holds it back, say). The
 *   callbacks and the cursor are the same for all; with a stream, each
 *   message is an answer of its own for `onAnswer`. With `token` or
 *   `getToken`, `"auto"` long-polls: `EventSource` cannot read a 401's
 *   reason, so it could not renew an expired token; `"sse"` sends the
 *   token as `token=` and falls back as `"auto"` would when it is refused.
 * @property {boolean} [shared=false] Share one connection between the tabs
 *   of this origin that subscribe to the same server: they elect a leader
 *   (Web Locks API), which holds the poll or stream for every tab's
 *   channels and passes the messages on (BroadcastChannel). When the
 *   leader's tab closes, another takes over from the last cursor the
 *   leader handed out: nothing lost, nothing delivered twice. Where those
 *   APIs are missing, each tab has its own connection. A subscription
 *   with `token` or `getToken` is not shared: its token is its tab's own.
 */

/**
 * PushUpError is what `onError` and `onClosed` receive.
 */
export class PushUpError extends Error {
  /**
   * @param {string} message What went wrong, for people.
   * @param {object} [details]
   * @param {number} [details.status] HTTP status, 0 when no answer arrived.
   * @param {string} [details.code] Error code.
   * @param {string} [details.cursor] Cursor the server sent with the error.
   * @param {*} [details.cause] The underlying error.
   */
  constructor(message, { status = 0, code = "network_error", cursor, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PushUpError";
    /**
     * HTTP status of the answer; 0 when none arrived (network failure, a
     * request refused by CORS, a lost connection).
     * @type {number}
     */
    this.status = status;
    /**
     * The server's error code (`"channel_closed"`, `"invalid_channel"`, ...)
     * or one of the client's: `"network_error"` (no answer), `"offline"` (the
     * browser went offline during the poll), `"poll_timeout"` (no answer
     * long after the requested wait), `"invalid_response"` (a 200
     * that is not a PushUp answer), `"http_error"` (an error status without
     * a PushUp error body, say a proxy's page).
     * @type {string}
     */
    this.code = code;
    /**
     * With `410 channel_closed`: the cursor to resume from. Otherwise
     * undefined.
     * @type {string|undefined}
     */
    this.cursor = cursor;
    /**
     * Milliseconds until the retry; undefined when the subscription stopped.
     * @type {number|undefined}
     */
    this.retryIn = undefined;
    /**
     * How many polls in a row have failed, this one included.
     * @type {number|undefined}
     */
    this.attempt = undefined;
  }
}

/** Errors that stop the subscription instead of being retried. */
const fatal = new WeakSet();
/** Retry-After of an error answer, in milliseconds. */
const retryAfter = new WeakMap();

/**
 * subscribe starts listening to one or several channels and returns the
 * running {@link Subscription}. onMessage receives each message once, in
 * time order, across all the channels (a message published to several of
 * them arrives once).
 *
 * It throws a TypeError or RangeError at once for arguments that can never
 * work; everything the server says arrives through the callbacks.
 *
 * @param {string|string[]} channels Channel names.
 * @param {(message: Message) => void} onMessage Called for each message.
 * @param {SubscribeOptions} [options]
 * @returns {Subscription}
 */
export function subscribe(channels, onMessage, options = {}) {
  return new Subscription(channels, onMessage, options);
}

/**
 * Subscription is a running subscription: a loop of long polls that stops
 * on `unsubscribe()` or when the server closes it. Create it with
 * {@link subscribe}.
 */
export class Subscription {
  #channels;
  #onMessage;
  #options;
  #endpoint;
  #timeout;
  #backoffBase;
  #backoffCap;
  #cursor;
  /** @type {string|undefined} the subscriber token, if any */
  #token;
  /** whether the current token was just fetched after token_expired */
  #renewed = false;
  #active = true;
  /** @type {AbortController|null} the in-flight poll's */
  #controller = null;
  /** @type {(() => void)|null} ends a backoff sleep early */
  #wake = null;
  #attempt = 0;
  /** @type {"longpoll"|"sse"|"auto"} */
  #transport;
  /** @type {(() => void)|null} ends the open event stream */
  #endStream = null;
  /** @type {SharedTab|null} the tab's share of a connection, when shared */
  #shared = null;
  #onOnline = () => this.#wake?.();
  #onOffline = () => {
    this.#controller?.abort(WENT_OFFLINE);
    this.#endStream?.();
  };

  /**
   * Use {@link subscribe}; the arguments are the same.
   *
   * @param {string|string[]} channels
   * @param {(message: Message) => void} onMessage
   * @param {SubscribeOptions} [options]
   */
  constructor(channels, onMessage, options = {}) {
    if (typeof onMessage !== "function") {
      throw new TypeError("pushup: onMessage must be a function");
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError("pushup: options must be an object");
    }
    this.#channels = channelList(channels);
    this.#onMessage = onMessage;
    this.#options = { ...options };
    this.#cursor = sinceParam(options.since);
    this.#timeout = timeoutParam(options.timeout);
    this.#backoffBase = milliseconds(options.backoffBase ?? DEFAULT_BACKOFF_BASE, "backoffBase");
    this.#backoffCap = milliseconds(options.backoffCap ?? DEFAULT_BACKOFF_CAP, "backoffCap");
    if (this.#backoffCap < this.#backoffBase) {
      throw new RangeError("pushup: backoffCap must be at least backoffBase");
    }
    this.#endpoint = subscribeURL(options.baseURL);
    if (options.token !== undefined && typeof options.token !== "string") {
      throw new TypeError("pushup: token must be a string");
    }
    if (options.getToken !== undefined && typeof options.getToken !== "function") {
      throw new TypeError("pushup: getToken must be a function");
    }
    this.#token = options.token;
    this.#transport = transportParam(options.transport);
    const usesTokens = options.token !== undefined || options.getToken !== undefined;
    if (usesTokens && this.#transport === "auto") this.#transport = "longpoll";
    if (options.shared === true && !usesTokens && sharingSupported()) {
      this.#shared = joinSharedTab(this.#endpoint, this.#transport, this.#timeout, {
        channels: this.#channels,
        since: this.#cursor,
        deliver: (answer) => this.#deliver(answer),
        truncated: (answer) => this.#call(this.#options.onTruncated ?? warnTruncated, answer),
        error: (err) => this.#call(this.#options.onError, err),
        closed: (err) => {
          this.#stop();
          this.#call(this.#options.onClosed ?? reportClosed, err);
        },
        active: () => this.#active,
      });
      return;
    }
    // A browser that went offline will not get an answer on the poll's
    // connection, which may still look open (a network change leaves it
    // dangling until TCP gives up). One that comes back online retries at
    // once instead of sleeping out its backoff.
    globalThis.addEventListener?.("online", this.#onOnline);
    globalThis.addEventListener?.("offline", this.#onOffline);
    this.#run().catch((e) => {
      // Only a bug in this module gets here; say so rather than stop quietly.
      this.#stop();
      console.error("pushup: subscription loop failed:", e);
    });
  }

  /**
   * The position after the last answer delivered in full: pass it as
   * `since` to a later subscribe() to carry on exactly where this one
   * stopped, nothing lost, nothing repeated. Before the first answer it is
   * the `since` this subscription started from.
   *
   * @type {string}
   */
  get cursor() {
    return this.#cursor;
  }

  /**
   * Whether the subscription still polls: false after `unsubscribe()` or
   * once the server closed it.
   *
   * @type {boolean}
   */
  get active() {
    return this.#active;
  }

  /** The channels this subscription listens to. @type {string[]} */
  get channels() {
    return [...this.#channels];
  }

  /**
   * unsubscribe stops the subscription: it aborts the poll in flight (the
   * server frees the waiting subscriber at once) and ends a backoff sleep.
   * No callback runs afterwards. Called from within onMessage, it also
   * skips the rest of that answer, and `cursor` stays at the answer's
   * start. Calling it again does nothing.
   */
  unsubscribe() {
    if (!this.#active) return;
    this.#stop();
    this.#controller?.abort();
    this.#endStream?.();
    this.#wake?.();
  }

  #stop() {
    this.#active = false;
    this.#shared?.leave();
    this.#shared = null;
    globalThis.removeEventListener?.("online", this.#onOnline);
    globalThis.removeEventListener?.("offline", this.#onOffline);
  }

  /** Runs the transport asked for; "auto" may move to long polling. */
  async #run() {
    const stream = this.#transport === "sse" || (this.#transport === "auto" && typeof globalThis.EventSource === "function");
    if (stream && (await this.#streamLoop())) return;
    await this.#loop();
  }

  /**
   * A loop of event streams: each runs until the server ends it (its
   * lifetime, a node shutting down) or it fails, and the next starts from
   * the cursor. It returns false to hand over to long polling (transport
   * "auto" after repeated failures), true when the subscription stopped.
   *
   * @returns {Promise<boolean>}
   */
  async #streamLoop() {
    let failures = 0;
    while (this.#active) {
      const { started, closed } = await this.#stream();
      if (!this.#active || closed) return true;
      if (started) {
        // It worked and ended: the usual end of a stream's lifetime.
        failures = 0;
        this.#attempt = 0;
        continue;
      }
      // Offline, every stream fails: that says nothing of streams here.
      if (globalThis.navigator?.onLine !== false) failures++;
      if (this.#transport === "auto" && failures >= STREAM_FAILURES_BEFORE_FALLBACK) {
        console.warn("pushup: event streams fail here; long polling instead");
        return false;
      }
      this.#attempt++;
      const err = new PushUpError("the event stream failed before it started", { code: "stream_error" });
      err.attempt = this.#attempt;
      err.retryIn = this.#backoff(undefined);
      this.#call(this.#options.onError, err);
      if (this.#active) await this.#sleep(err.retryIn);
    }
    return true;
  }

  /**
   * One event stream, from the cursor. It resolves when the stream ends:
   * started says whether the server's first event came (so the stream
   * worked), closed whether the subscription stopped because the
   * channels closed. EventSource's own reconnection is not used: each
   * stream starts from the cursor delivered last, as a poll does.
   *
   * @returns {Promise<{started: boolean, closed: boolean}>}
   */
  #stream() {
    return new Promise((resolve) => {
      const url = new URL("events", this.#endpoint); // next to subscribe
      url.searchParams.set("channels", this.#channels.join(","));
      if (this.#cursor !== "") url.searchParams.set("since", this.#cursor);
      if (this.#token) url.searchParams.set("token", this.#token);
      const es = new EventSource(url);
      let started = false;
      const end = (closed = false) => {
        clearTimeout(watchdog);
        es.close();
        if (this.#endStream === end) this.#endStream = null;
        resolve({ started, closed });
      };
      const watchdog = setTimeout(end, STREAM_OPEN_TIMEOUT_MS);
      this.#endStream = end;
      const json = (e) => {
        try {
          return JSON.parse(e.data);
        } catch {
          return undefined;
        }
      };
      es.addEventListener("cursor", (e) => {
        const body = json(e);
        if (typeof body?.cursor !== "string") return;
        started = true;
        clearTimeout(watchdog);
        this.#attempt = 0;
        this.#cursor = body.cursor;
      });
      es.onmessage = (e) => {
        const m = json(e);
        if (m === null || typeof m !== "object" || typeof m.id !== "string" || e.lastEventId === "") {
          console.warn("pushup: not a PushUp event:", preview(e.data));
          return end();
        }
        this.#deliver({ messages: [m], cursor: e.lastEventId, more: false, truncated: false });
        if (!this.#active) end();
      };
      es.addEventListener("truncated", () => {
        this.#call(this.#options.onTruncated ?? warnTruncated, { messages: [], cursor: this.#cursor, more: false, truncated: true });
      });
      es.addEventListener("closed", (e) => {
        const body = json(e) ?? {};
        const err = new PushUpError(typeof body.message === "string" ? body.message : "channels closed", {
          status: 410,
          code: typeof body.error === "string" ? body.error : "channel_closed",
          cursor: typeof body.cursor === "string" ? body.cursor : undefined,
        });
        this.#stop();
        end(true);
        this.#call(this.#options.onClosed ?? reportClosed, err);
      });
      // The stream ended or never opened. EventSource would reconnect on
      // its own (with Last-Event-ID); this loop does, from its cursor.
      es.onerror = () => end();
    });
  }

  async #loop() {
    while (this.#active) {
      let answer;
      try {
        answer = await this.#poll();
      } catch (e) {
        if (!this.#active) return; // unsubscribed: the abort is expected
        const err = e instanceof PushUpError ? e : new PushUpError(String(e), { cause: e });
        if (err.code === "token_expired" && this.#options.getToken && !this.#renewed) {
          // Renew once and poll again at once; the cursor has not moved.
          // A second token_expired in a row means getToken hands out
          // expired tokens: that one stops the subscription.
          this.#renewed = true;
          this.#token = undefined;
          continue;
        }
        if (fatal.has(err)) {
          this.#stop();
          this.#call(this.#options.onClosed ?? reportClosed, err);
          return;
        }
        this.#attempt++;
        err.attempt = this.#attempt;
        err.retryIn = this.#backoff(retryAfter.get(err));
        this.#call(this.#options.onError, err);
        if (this.#active) await this.#sleep(err.retryIn);
        continue;
      }
      if (!this.#active) return;
      this.#attempt = 0;
      this.#renewed = false;
      this.#deliver(answer);
      // A draining server spreads its subscribers' returns: wait the
      // jittered moment it asks for (at most backoffCap) before polling.
      const hint = answer.retry_after_ms;
      if (this.#active && typeof hint === "number" && hint > 0) {
        await this.#sleep(Math.min(hint, this.#backoffCap));
      }
    }
  }

  /**
   * One long poll. It resolves with a valid answer and throws a
   * PushUpError otherwise; errors to stop on are in `fatal`.
   *
   * @returns {Promise<Answer>}
   */
  async #poll() {
    const url = new URL(this.#endpoint);
    url.searchParams.set("channels", this.#channels.join(","));
    if (this.#cursor !== "") url.searchParams.set("since", this.#cursor);
    if (this.#timeout !== undefined) url.searchParams.set("timeout", String(this.#timeout));
    if (this.#token === undefined && this.#options.getToken) {
      try {
        this.#token = String(await this.#options.getToken());
      } catch (e) {
        throw new PushUpError(`getToken failed: ${e?.message ?? e}`, { code: "token_unavailable", cause: e });
      }
    }
    if (this.#token) url.searchParams.set("token", this.#token);

    const controller = new AbortController();
    this.#controller = controller;
    const limit = (this.#timeout ?? SERVER_MAX_TIMEOUT) * 1000 + WATCHDOG_GRACE_MS;
    const watchdog = setTimeout(() => controller.abort(POLL_TIMEOUT), limit);
    let res;
    let text;
    try {
      // No custom headers: a plain GET needs no CORS preflight.
      res = await fetch(url, { signal: controller.signal, cache: "no-store" });
      text = await res.text();
    } catch (e) {
      const reason = controller.signal.aborted ? controller.signal.reason : undefined;
      if (reason === POLL_TIMEOUT) {
        throw new PushUpError(`no answer within ${limit} ms`, { code: "poll_timeout" });
      }
      if (reason === WENT_OFFLINE) {
        throw new PushUpError("the browser went offline", { code: "offline" });
      }
      throw new PushUpError(`request failed: ${e?.message ?? e}`, { code: "network_error", cause: e });
    } finally {
      clearTimeout(watchdog);
      if (this.#controller === controller) this.#controller = null;
    }

    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.status === 200) {
      if (!isAnswer(body)) {
        throw new PushUpError(`not a PushUp answer: ${preview(text)}`, { status: 200, code: "invalid_response" });
      }
      return body;
    }

    // A PushUp error body is the server speaking: trust its verdict. Any
    // other body (a proxy's error page) says nothing about the request.
    const known = body !== null && typeof body === "object" && typeof body.error === "string";
    const err = known
      ? new PushUpError(typeof body.message === "string" ? body.message : body.error, {
          status: res.status,
          code: body.error,
          cursor: typeof body.cursor === "string" ? body.cursor : undefined,
        })
      : new PushUpError(`HTTP ${res.status}: ${preview(text)}`, { status: res.status, code: "http_error" });
    const retriable = res.status >= 500 || res.status === 429 || res.status === 408 || (!known && res.status !== 410);
    if (!retriable) fatal.add(err);
    const after = retryAfterMillis(res.headers.get("Retry-After"));
    if (after !== undefined) retryAfter.set(err, after);
    throw err;
  }

  /** @param {Answer} answer */
  #deliver(answer) {
    if (answer.truncated === true) {
      this.#call(this.#options.onTruncated ?? warnTruncated, answer);
    }
    const { messages } = answer;
    let i = 0;
    for (; i < messages.length && this.#active; i++) {
      this.#call(this.#onMessage, messages[i]);
    }
    // A cursor cannot point into an answer, so it only moves once the
    // whole answer was delivered.
    if (i < messages.length) return;
    this.#cursor = answer.cursor;
    if (this.#active && this.#options.onAnswer) this.#call(this.#options.onAnswer, answer);
  }

  /**
   * Full jitter: a random wait below an exponentially growing ceiling
   * spreads the retries of many clients that failed together (a node
   * restart) instead of sending them back in waves.
   *
   * @param {number|undefined} after the server's Retry-After, in ms
   * @returns {number} milliseconds
   */
  #backoff(after) {
    const ceiling = Math.min(this.#backoffCap, this.#backoffBase * 2 ** (this.#attempt - 1));
    let wait = Math.random() * ceiling;
    if (after !== undefined) wait = Math.max(wait, Math.min(after, this.#backoffCap));
    return Math.round(wait);
  }

  /** @param {number} ms */
  #sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /**
   * Runs a caller's callback. An exception in it is the caller's bug: it
   * is reported like an uncaught one, and the loop goes on, so one bad
   * message cannot stop delivery of the next.
   */
  #call(fn, ...args) {
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (e) {
      if (typeof globalThis.reportError === "function") {
        globalThis.reportError(e);
      } else {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

/** @returns {string[]} */
function channelList(channels) {
  const list = typeof channels === "string" ? [channels] : channels;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError("pushup: channels must be a channel name or a non-empty array of them");
  }
  for (const c of list) {
    if (typeof c !== "string" || c === "" || c.includes(",")) {
      throw new TypeError(`pushup: invalid channel name ${JSON.stringify(c)}`);
    }
  }
  return [...list];
}

/** @returns {string} the since parameter; "" for every cached message */
function sinceParam(since) {
  if (since === undefined || since === null || since === 0 || since === "0" || since === "") return "";
  if (since instanceof Date) since = since.getTime();
  if (typeof since === "number") {
    if (!Number.isSafeInteger(since) || since < 0) {
      throw new RangeError(`pushup: since must be a Unix time in milliseconds, got ${since}`);
    }
    return String(since);
  }
  if (typeof since === "string") return since;
  throw new TypeError("pushup: since must be a cursor, a Unix time in milliseconds, a Date or \"now\"");
}

/** @returns {number|undefined} */
function timeoutParam(timeout) {
  if (timeout === undefined) return undefined;
  // 0 would make every poll answer at once: a busy loop, not long polling.
  if (typeof timeout !== "number" || !(timeout > 0) || !Number.isFinite(timeout)) {
    throw new RangeError(`pushup: timeout must be a number of seconds above 0, got ${timeout}`);
  }
  return timeout;
}

/** @returns {"longpoll"|"sse"|"auto"} */
function transportParam(transport) {
  if (transport === undefined) return "longpoll";
  if (transport === "longpoll" || transport === "sse" || transport === "auto") return transport;
  throw new RangeError(`pushup: transport must be "longpoll", "sse" or "auto", got ${JSON.stringify(transport)}`);
}

function warnTruncated() {
  console.warn("pushup: messages were evicted from the server's cache before delivery (truncated)");
}

/** @param {PushUpError} err */
function reportClosed(err) {
  console.error("pushup: subscription stopped:", err);
}

/** @returns {number} */
function milliseconds(v, name) {
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
    throw new RangeError(`pushup: ${name} must be a number of milliseconds above 0, got ${v}`);
  }
  return v;
}

/** @returns {URL} the subscribe endpoint under baseURL */
function subscribeURL(baseURL) {
  // The default is the directory pushup.js was served from, so a server
  // behind a path prefix (/push/pushup.js) is found at /push/v1/subscribe.
  const base =
    baseURL === undefined ? new URL(".", import.meta.url) : new URL(String(baseURL), globalThis.location?.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return new URL("v1/subscribe", base);
}

/** @returns {boolean} whether body has the shape of a subscribe answer */
function isAnswer(body) {
  return (
    body !== null &&
    typeof body === "object" &&
    Array.isArray(body.messages) &&
    typeof body.cursor === "string" &&
    body.cursor !== "" &&
    body.messages.every((m) => m !== null && typeof m === "object" && typeof m.id === "string")
  );
}

/** @returns {number|undefined} a Retry-After in seconds, as milliseconds */
function retryAfterMillis(header) {
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header.trim()) * 1000;
}

function preview(text) {
  const t = String(text ?? "").trim();
  if (t === "") return "(empty body)";
  return t.length > PREVIEW_CHARS ? JSON.stringify(t.slice(0, PREVIEW_CHARS) + "…") : JSON.stringify(t);
}

/* One connection for all tabs (option `shared`).
 *
 * The tabs of an origin that follow the same server share one connection
 * per distinct set of channels. One tab leads: it holds the Web Lock named
 * after the server, runs an ordinary Subscription per channel set and posts
 * every answer on a BroadcastChannel named after the server; every tab
 * (the leader too) hands the answers to its own subscriptions. When the
 * leader's tab closes, the browser releases its lock and the next tab in
 * the lock's queue leads, each channel set resuming from the last cursor
 * the old leader posted. A subscription drops a message id it has already
 * delivered, so the overlap of a takeover is never delivered twice.
 *
 * Messages on the BroadcastChannel:
 *   {t:"hello", tab, groups:[{key, channels, since}]}  a tab's channel sets
 *   {t:"bye", tab}                                    a tab leaves
 *   {t:"lead", tab}                                   a new leader asks for hellos
 *   {t:"answer", key, answer}                         an answer for a channel set
 *   {t:"cursor", key, cursor}                         a set's position, while idle
 *   {t:"error"|"closed"|"truncated", key, ...}        the callbacks of that name
 */

/** How often each tab says which channel sets it follows, in ms. */
const ANNOUNCE_MS = 2000;
/** A tab not heard from for this long is gone (its "bye" may be lost). */
const TAB_EXPIRY_MS = 3 * ANNOUNCE_MS + 1000;
/** How many delivered message ids a shared subscription remembers. */
const SEEN_IDS = 4096;

/** @returns {boolean} whether tabs can share a connection here */
function sharingSupported() {
  return typeof globalThis.BroadcastChannel === "function" && typeof globalThis.navigator?.locks?.request === "function";
}

/** @type {Map<string, SharedTab>} this tab's share, per server */
const sharedTabs = new Map();

/**
 * @param {URL} endpoint the server's subscribe endpoint
 * @param {string} transport
 * @param {number|undefined} timeout
 * @param {object} member the subscription's hooks (see Subscription)
 * @returns {{leave: () => void}}
 */
function joinSharedTab(endpoint, transport, timeout, member) {
  let tab = sharedTabs.get(endpoint.href);
  if (tab === undefined) {
    tab = new SharedTab(endpoint, transport, timeout);
    sharedTabs.set(endpoint.href, tab);
  }
  return tab.join(member);
}

/** SharedTab is this tab's part in sharing connections to one server. */
class SharedTab {
  #endpoint;
  #transport;
  #timeout;
  #id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  #bc;
  #abort = new AbortController();
  /** @type {(() => void)|null} gives up the leadership */
  #release = null;
  #leading = false;
  /** @type {Set<object>} this tab's members */
  #members = new Set();
  /** @type {Map<string, {groups: object[], at: number}>} other tabs */
  #tabs = new Map();
  /** @type {Map<string, string>} each channel set's last known cursor */
  #cursors = new Map();
  /** @type {Map<string, Subscription>} the leader's connections */
  #inner = new Map();
  #timer;
  #onHide = () => this.#post({ t: "bye", tab: this.#id });

  constructor(endpoint, transport, timeout) {
    this.#endpoint = endpoint;
    this.#transport = transport;
    this.#timeout = timeout;
    this.#bc = new BroadcastChannel(`pushup:${endpoint.href}`);
    this.#bc.onmessage = (e) => this.#receive(e.data);
    this.#timer = setInterval(() => this.#tick(), ANNOUNCE_MS);
    globalThis.addEventListener?.("pagehide", this.#onHide);
    navigator.locks
      .request(`pushup-leader:${endpoint.href}`, { signal: this.#abort.signal }, () =>
        new Promise((release) => {
          this.#release = release;
          this.#lead();
        }),
      )
      .catch(() => {}); // aborted: this tab left before it led
  }

  /** @returns {{leave: () => void}} */
  join(hooks) {
    const m = {
      ...hooks,
      key: [...hooks.channels].sort().join(","),
      seen: new Set(),
      // A subscription first reads from its own start up to the present
      // itself (the set's connection, if it exists already, is elsewhere),
      // holding back what the connection posts meanwhile.
      held: [],
    };
    this.#members.add(m);
    this.#hello();
    if (this.#leading) this.#sync();
    this.#catchUp(m);
    return { leave: () => this.#leave(m) };
  }

  #leave(m) {
    this.#members.delete(m);
    if (this.#members.size > 0) {
      this.#hello();
      if (this.#leading) this.#sync();
      return;
    }
    // The last subscription of this tab went: hand the lead on.
    this.#post({ t: "bye", tab: this.#id });
    sharedTabs.delete(this.#endpoint.href);
    clearInterval(this.#timer);
    globalThis.removeEventListener?.("pagehide", this.#onHide);
    for (const sub of this.#inner.values()) sub.unsubscribe();
    this.#inner.clear();
    this.#abort.abort();
    this.#release?.();
    this.#bc.close();
  }

  /** The channel sets of this tab, as announced. */
  #groups() {
    const groups = new Map();
    for (const m of this.#members) {
      if (!groups.has(m.key)) groups.set(m.key, { key: m.key, channels: m.channels, since: m.since });
    }
    return [...groups.values()];
  }

  #hello() {
    this.#post({ t: "hello", tab: this.#id, groups: this.#groups() });
  }

  /** Posts msg to the other tabs and handles it here too. */
  #post(msg) {
    this.#bc.postMessage(msg);
    this.#receive(msg, true);
  }

  #tick() {
    this.#hello();
    if (!this.#leading) return;
    const now = Date.now();
    for (const [tab, seen] of this.#tabs) {
      if (now - seen.at > TAB_EXPIRY_MS) this.#tabs.delete(tab);
    }
    this.#sync();
    for (const [key, sub] of this.#inner) {
      if (sub.cursor !== "" && sub.cursor !== "now") this.#post({ t: "cursor", key, cursor: sub.cursor });
    }
  }

  #lead() {
    this.#leading = true;
    this.#post({ t: "lead", tab: this.#id });
    this.#sync();
  }

  /**
   * The leader's connections follow the channel sets of every tab: a set
   * nobody follows any more is dropped, a new one is connected from its
   * last known cursor or, for a set nobody has followed yet, from where
   * its first subscription asked to start.
   */
  #sync() {
    const wanted = new Map();
    for (const g of this.#groups()) wanted.set(g.key, g);
    for (const { groups } of this.#tabs.values()) {
      for (const g of groups) if (!wanted.has(g.key)) wanted.set(g.key, g);
    }
    for (const [key, sub] of this.#inner) {
      if (!wanted.has(key)) {
        sub.unsubscribe();
        this.#inner.delete(key);
      }
    }
    for (const [key, g] of wanted) {
      if (this.#inner.has(key)) continue;
      const since = this.#cursors.get(key) ?? g.since;
      const sub = new Subscription(g.channels, () => {}, {
        since: since === "" ? undefined : since,
        transport: this.#transport,
        timeout: this.#timeout,
        baseURL: new URL("..", this.#endpoint),
        onAnswer: (answer) => this.#post({ t: "answer", key, answer }),
        onTruncated: (answer) => this.#post({ t: "truncated", key, answer }),
        onError: (err) => this.#post({ t: "error", key, err: errorFields(err) }),
        onClosed: (err) => {
          this.#inner.delete(key);
          this.#post({ t: "closed", key, err: errorFields(err) });
        },
      });
      this.#inner.set(key, sub);
    }
  }

  #receive(msg, local = false) {
    if (msg === null || typeof msg !== "object") return;
    switch (msg.t) {
      case "hello":
        if (!local) this.#tabs.set(msg.tab, { groups: msg.groups ?? [], at: Date.now() });
        if (this.#leading && !local) this.#sync();
        return;
      case "bye":
        if (local) return;
        this.#tabs.delete(msg.tab);
        if (this.#leading) this.#sync();
        return;
      case "lead":
        if (!local) this.#hello();
        return;
      case "cursor":
        this.#cursors.set(msg.key, msg.cursor);
        return;
      case "answer":
        this.#cursors.set(msg.key, msg.answer.cursor);
        break;
    }
    for (const m of this.#members) {
      if (m.key === msg.key) this.#dispatch(m, msg);
    }
  }

  #dispatch(m, msg) {
    if (!m.active()) return;
    if (msg.t === "answer" && m.held !== null) {
      m.held.push(msg.answer);
      return;
    }
    switch (msg.t) {
      case "answer":
        this.#deliver(m, msg.answer);
        return;
      case "truncated":
        m.truncated(msg.answer);
        return;
      case "error":
        m.error(toPushUpError(msg.err));
        return;
      case "closed":
        m.closed(toPushUpError(msg.err));
        return;
    }
  }

  /** Delivers an answer to m, without the messages m already had. */
  #deliver(m, answer) {
    const fresh = answer.messages.filter((msg) => !m.seen.has(msg.id));
    for (const msg of fresh) {
      m.seen.add(msg.id);
      if (m.seen.size > SEEN_IDS) m.seen.delete(m.seen.values().next().value);
    }
    // Truncation reaches m once, as its own "truncated" message.
    m.deliver({ ...answer, messages: fresh, truncated: false });
  }

  /**
   * Reads from m's own start up to the present with immediate polls, then
   * delivers what the shared connection posted meanwhile (minus what the
   * polls already gave).
   */
  async #catchUp(m) {
    const get = async (url) => {
      try {
        const res = await fetch(url, { cache: "no-store" });
        return res.ok ? await res.json() : undefined;
      } catch {
        return undefined;
      }
    };
    let cursor = m.since;
    for (let attempt = 0; m.active() && cursor === "now"; ) {
      // "now" is pinned to a position first, so that what is published
      // while the shared connection gets going is not lost.
      const pos = new URL("../v1/position", this.#endpoint);
      pos.searchParams.set("channels", m.channels.join(","));
      const body = await get(pos);
      if (typeof body?.cursor === "string") {
        cursor = body.cursor;
        break;
      }
      attempt++;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(DEFAULT_BACKOFF_CAP, DEFAULT_BACKOFF_BASE * 2 ** attempt)));
    }
    const url = new URL(this.#endpoint);
    url.searchParams.set("channels", m.channels.join(","));
    url.searchParams.set("timeout", "0");
    for (let attempt = 0; m.active(); ) {
      if (cursor !== "") url.searchParams.set("since", cursor);
      const answer = await get(url);
      if (!isAnswer(answer)) {
        // The shared connection reports errors; retry quietly.
        attempt++;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(DEFAULT_BACKOFF_CAP, DEFAULT_BACKOFF_BASE * 2 ** attempt)));
        continue;
      }
      attempt = 0;
      if (answer.truncated === true) m.truncated(answer);
      this.#deliver(m, answer);
      cursor = answer.cursor;
      if (answer.messages.length === 0 && !answer.more) break;
    }
    const held = m.held ?? [];
    m.held = null;
    for (const answer of held) if (m.active()) this.#deliver(m, answer);
  }
}

/** The fields of a PushUpError that survive a BroadcastChannel. */
function errorFields(err) {
  return { message: err.message, status: err.status, code: err.code, cursor: err.cursor, retryIn: err.retryIn, attempt: err.attempt };
}

/** @returns {PushUpError} */
function toPushUpError(f) {
  const err = new PushUpError(f.message, { status: f.status, code: f.code, cursor: f.cursor });
  err.retryIn = f.retryIn;
  err.attempt = f.attempt;
  return err;
}
