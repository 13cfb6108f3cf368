// Package web is the browser side of PushUp. It embeds pushup.js, the
// dependency-free ES module browsers use to subscribe, so that pushupd
// serves (at GET /pushup.js) exactly the client of the API it implements.
// pushup.js is kept here as a source file with its JSDoc; the README
// documents its API. The Q&A demo built on it is in web/demo.
//
// The package only holds content; serving it is the api package's job.
package web
