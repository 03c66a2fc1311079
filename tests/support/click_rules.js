// Runs click.js in Node.js with just enough of a page around it (no click id in the URL, so it stores and
// decorates nothing), then evaluates the calls given on stdin as [[function, [args...]], ...] and prints the results.
"use strict";
const fs = require("fs"), vm = require("vm");
const page = {
  URL,
  location: new URL("https://www.shop.test/landing"),
  document: { currentScript: null, cookie: "", documentElement: {}, querySelectorAll: () => [] },
  MutationObserver: class { observe() {} },
};
page.window = page;
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), page, { filename: "click.js" });
const calls = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(calls.map(([name, args]) => page.postbackRelay[name](...args))));
