// Package demo is the Q&A example of the PushUp paper, served by
// pushupd -demo at /demo/: people post questions with tags and follow
// tags, and see new questions as they are posted.
//
// A question is published once, as one message, to "author:<name>" and to
// "tag:<t>" for each of its tags. A viewer following several tags
// subscribes to all of their channels in one request, and the broker's
// batch subscribe merges them in time order and drops duplicates, so each
// question appears once even when it carries several of the followed tags.
//
// The package validates what a browser may post (NewQuestion), holds
// the page's static assets (Assets), and serves both as a plug-in of the
// HTTP front (NewPlugin, an api.Plugin; Off for a server without it). Posting
// goes through pushupd because browsers must never hold the publisher key:
// the endpoint publishes only well-formed questions, only to author: and
// tag: channels, within Config's limits.
//
// Each person also follows a private channel, "user:<name>" (UserPrefix),
// for notifications. The plug-in plays the application's backend there:
// GET /demo/api/token mints a short-lived subscriber token granting that
// one channel, signed with Config.TokenKey, and the page hands it to
// pushup.js through getToken, which fetches a new one when it expires.
//
// Nothing here keeps state between requests, and the page subscribes with
// pushup.js and resumes from cursors, so the demo works unchanged against
// a cluster behind a load balancer, provided its nodes share the token key.
package demo
