// The Q&A demo page. It posts questions through the demo endpoint (the
// browser never holds the publisher key) and follows tags and authors with
// pushup.js. It keeps no state on the server: the subscription's cursor
// lives in this page, so the same page works against a cluster.
import { subscribe } from "../pushup.js";

const $ = (id) => document.getElementById(id);

/** @type {import("../pushup.js").Subscription | null} */
let sub = null;

/** words splits a comma- or space-separated list. */
function words(s) {
  return s.split(/[\s,]+/).filter((w) => w !== "");
}

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  // textContent, never innerHTML: titles are whatever people typed.
  if (text !== undefined) el.textContent = text;
  return el;
}

/** show adds a message to the top of the feed: newest first. */
function show(message) {
  const li = element("li");
  li.dataset.id = message.id;
  li.dataset.time = String(message.time);
  li.dataset.received = String(Date.now());
  const q = message.data;
  const when = new Date(message.time).toLocaleTimeString();
  if (q && q.type === "question" && typeof q.title === "string" && Array.isArray(q.tags)) {
    li.className = "question";
    const tags = element("span", "tags");
    for (const t of q.tags) tags.append(element("span", "tag", t));
    li.append(element("span", "title", q.title), element("span", "meta", `by ${q.author} at ${when}`), tags);
  } else {
    // Anything else published to a followed channel, e.g. with curl.
    li.className = "other";
    li.append(element("span", "title", JSON.stringify(q)), element("span", "meta", `message at ${when}`));
  }
  $("feed").prepend(li);
}

/** follow replaces the current subscription with one to these tags and authors. */
function follow(tags, authors) {
  sub?.unsubscribe();
  sub = null;
  $("feed").replaceChildren();
  $("notice").hidden = true;
  tags = [...new Set(tags.map((t) => t.toLowerCase()))];
  authors = [...new Set(authors)];

  const params = new URLSearchParams(location.search);
  params.set("tags", tags.join(","));
  params.set("authors", authors.join(","));
  history.replaceState(null, "", `?${params}`);

  const channels = [...tags.map((t) => `tag:${t}`), ...authors.map((a) => `author:${a}`)];
  if (channels.length === 0) {
    setStatus("idle", "Follow a tag to see its questions.");
    return;
  }
  const list = channels.join(", ");
  setStatus("listening", `Listening on ${list}`);
  // No since: the questions the server still caches come first, then new
  // ones as they are posted. The tabs of this page share one connection
  // (a stream where the browser can, long polls otherwise).
  sub = subscribe(channels, show, {
    shared: true,
    transport: "auto",
    onAnswer: () => setStatus("live", `Live on ${list}`),
    onError: (err) => setStatus("retrying", `Connection problem (${err.message}); retrying in ${(err.retryIn / 1000).toFixed(1)} s`),
    onClosed: (err) => setStatus("closed", `Stopped: ${err.message} (${err.code})`),
    onTruncated: () => {
      const n = $("notice");
      n.textContent = "Some questions were evicted from the server's cache before they reached this page.";
      n.hidden = false;
    },
  });
}

$("follow-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  follow(words($("follow-tags").value), words($("follow-authors").value));
});

$("ask-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const result = $("ask-result");
  const question = { author: $("ask-author").value, title: $("ask-title").value, tags: words($("ask-tags").value) };
  result.dataset.state = "posting";
  result.textContent = "Posting…";
  try {
    const res = await fetch("api/questions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(question),
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      result.dataset.state = "posted";
      result.dataset.id = body.id;
      result.textContent = `Posted once, to ${body.channels.join(", ")}`;
      $("ask-title").value = "";
    } else {
      result.dataset.state = "error";
      result.textContent = body.message ?? `HTTP ${res.status}`;
    }
  } catch (err) {
    result.dataset.state = "error";
    result.textContent = `Could not post: ${err.message}`;
  }
});

// ?tags=go,js&authors=ann&name=ann fills the forms and starts following,
// so a link can open a ready page.
const params = new URLSearchParams(location.search);
$("ask-author").value = params.get("name") ?? "";
$("follow-tags").value = params.get("tags") ?? "";
$("follow-authors").value = params.get("authors") ?? "";
if (params.get("tags") || params.get("authors")) {
  follow(words($("follow-tags").value), words($("follow-authors").value));
}

// The private channel. user:<name> carries this person's notifications,
// and only they may read it: the server makes user:* private, and this
// demo's own server plays the application's backend, minting a token that
// grants that one channel for a few minutes (GET api/token). pushup.js
// calls getToken for the first poll and again when the token expires,
// then polls from the same cursor, so nothing is missed across renewals.
// A real backend mints only for the person signed in; the demo has no
// sign-in, so it shows the mechanism, not a login.

/** @type {import("../pushup.js").Subscription | null} */
let inbox = null;

/** inboxToken fetches a fresh token for name's private channel. */
async function inboxToken(name) {
  const res = await fetch(`api/token?name=${encodeURIComponent(name)}`, { cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.message ?? `HTTP ${res.status}`), { status: res.status });
  return body.token;
}

function setInboxStatus(state, text) {
  const el = $("inbox-status");
  el.dataset.state = state;
  el.textContent = text;
}

/** showNotification adds a private message to the top of the inbox. */
function showNotification(message) {
  const li = element("li", "notification");
  li.dataset.id = message.id;
  const d = message.data;
  const text = d && typeof d.text === "string" ? d.text : JSON.stringify(d);
  li.append(element("span", "title", text), element("span", "meta", `at ${new Date(message.time).toLocaleTimeString()}`));
  $("inbox").prepend(li);
}

/** followInbox replaces the inbox's subscription with one to user:<name>. */
function followInbox(name) {
  inbox?.unsubscribe();
  inbox = null;
  $("inbox").replaceChildren();
  if (!name) {
    setInboxStatus("idle", "Enter your name to follow your private channel.");
    return;
  }
  const channel = `user:${name}`;
  setInboxStatus("listening", `Listening on ${channel} (private)`);
  // Long polls, not shared with other tabs: pushup.js keeps a token to
  // its own tab, and long-polls it so a 401 says when to renew.
  inbox = subscribe([channel], showNotification, {
    getToken: () => inboxToken(name),
    onAnswer: () => setInboxStatus("live", `Live on ${channel}, with a token only you get`),
    onError: (err) => {
      if (err.cause?.status === 404) {
        // A server with no key to mint tokens: no private channel here.
        inbox?.unsubscribe();
        setInboxStatus("off", err.cause.message);
        $("inbox-section").hidden = true;
        return;
      }
      setInboxStatus("retrying", `Problem (${err.message}); retrying in ${(err.retryIn / 1000).toFixed(1)} s`);
    },
    onClosed: (err) => setInboxStatus("closed", `Stopped: ${err.message} (${err.code})`),
  });
}

$("ask-author").addEventListener("change", () => {
  const name = $("ask-author").value.trim();
  const params = new URLSearchParams(location.search);
  params.set("name", name);
  history.replaceState(null, "", `?${params}`);
  followInbox(name);
});
followInbox(($("ask-author").value ?? "").trim());
