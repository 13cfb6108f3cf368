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
  #onOnline = () => this.#wake?.();
  #onOffline = () => this.#controller?.abort(WENT_OFFLINE);

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
    // A browser that went offline will not get an answer on the poll's
    // connection, which may still look open (a network change leaves it
    // dangling until TCP gives up). One that comes back online retries at
    // once instead of sleeping out its backoff.
    globalThis.addEventListener?.("online", this.#onOnline);
    globalThis.addEventListener?.("offline", this.#onOffline);
    this.#loop().catch((e) => {
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
    this.#wake?.();
  }

  #stop() {
    this.#active = false;
    globalThis.removeEventListener?.("online", this.#onOnline);
    globalThis.removeEventListener?.("offline", this.#onOffline);
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
          if (this.#options.onClosed) {
            this.#call(this.#options.onClosed, err);
          } else {
            console.error(`pushup: subscription to ${this.#channels.join(",")} stopped:`, err);
          }
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
      if (this.#options.onTruncated) {
        this.#call(this.#options.onTruncated, answer);
      } else {
        console.warn(`pushup: messages on ${this.#channels.join(",")} were evicted before delivery (truncated)`);
      }
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
