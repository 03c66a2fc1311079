/*! postback-relay click.js 1 | MIT | see the README */
((w, d, L, K) => {
const c = d.currentScript?.dataset || {}, ID = /^[0-9a-f]{40}$/,
N = /^\w+$/.test(c.cookie || "") ? c.cookie : "ts_click_id", AGE = 864e2 * (c.days > 0 ? c.days : 30),
FIRST = c.attribution == "first", SLD = /^(ac|co|com|edu|go|gob|gov|ltd|ne|net|or|org)$/,
valid = v => (v = String(v ?? "").trim().toLowerCase(), ID.test(v) ? v : null),
keep = (old, id) => old && (old == id || !valid(old)),
fromUrl = (u, names = (c.param || K).split(",")) => {
 const q = new URL(u, L).searchParams;
 return names.map(n => valid(q.get(n.trim()))).find(v => v) || null;
},
cookieDomains = h => {
 const l = h.split("."), n = l.length, out = [];
 if (!/[:[]|^[\d.]+$|(^|\.)localhost$/.test(h))
  for (let k = l[n - 1].length == 2 && SLD.test(l[n - 2]) ? 3 : 2; k <= n; k++) out.push(l.slice(-k).join("."));
 return out;
},
cookie = () => (d.cookie.match(`(?:^|; )${N}=([^;]*)`) || [])[1],
set = (v, dom, age) => d.cookie = `${N}=${v};Path=/;Max-Age=${age}${dom && ";Domain=" + dom};SameSite=Lax` +
 (L.protocol == "https:" ? ";Secure" : ""),
local = f => { try { return f(localStorage); } catch {} },
domains = () => cookieDomains(L.hostname).concat(""),
erase = () => { domains().map(dom => set("", dom, 0)); local(s => s.removeItem(N)); },
stored = (s = (local(s => s.getItem(N)) || "").split(".")) => valid(cookie()) || (s[1] > Date.now() ? valid(s[0]) : null),
save = id => {
 if (FIRST && stored()) return;
 erase();
 domains().some(dom => (set(id, dom, AGE), cookie() == id));
 local(s => s.setItem(N, id + "." + (Date.now() + AGE * 1e3)));
},
clickId = () => ok ? (FIRST ? stored() || page : page || stored()) : null,
attr = (el, a, v) => v ? el.setAttribute(a, v) : el.getAttribute(a),
url = el => { try { return new URL(el.href || el.action); } catch {} },
field = name => (form, id) => {
 let i = form.querySelector(`input[name="${name}"]`);
 i || ((i = form.appendChild(d.createElement("input"))).type = "hidden", i.name = name);
 keep(i.value, id) || (i.value = id);
},
param = name => (el, id, u = url(el)) => el.tagName == "FORM" ? field(name)(el, id) :
 u && !keep(u.searchParams.get(name), id) && (u.searchParams.set(name, id), el.href = u),
LINKS = [
 [/^buy\.stripe\.com\//, "client_reference_id"],
 [/\.lemonsqueezy\.com\/(checkout\/)?buy\//, `checkout[custom][${K}]`],
 [/^(api|sandbox-api|bill)\.ccbill\.com\//, K]
],
TAGS = [
 ["stripe-buy-button,stripe-pricing-table", (el, id) => keep(attr(el, "client-reference-id"), id) ||
  (attr(el, "client-reference-id", id), customElements.get(el.localName) && el.replaceWith(el.cloneNode(true)))],
 [".paddle_button", (el, id, j) => {
  try { j = JSON.parse(attr(el, "data-custom-data") || "{}"); } catch { return; }
  j?.constructor == Object && !keep(j[K], id) && attr(el, "data-custom-data", JSON.stringify({ ...j, [K]: id }));
 }],
 ["form.woocommerce-checkout", field(K)],
 ["[data-click-param]", (el, id) => param(attr(el, "data-click-param"))(el, id)]
],
SEL = "a[href],form[action]," + TAGS.map(t => t[0]),
run = () => {
 const id = clickId(), s = w.Shopify;
 if (!id) return;
 d.querySelectorAll(SEL).forEach(el => {
  const u = url(el);
  LINKS.forEach(([h, name]) => u && h.test(u.hostname + u.pathname) && param(name)(el, id));
  TAGS.forEach(([sel, f]) => el.matches(sel) && f(el, id));
 });
 (s?.shop || "shopify" in c) && cart != id && fetch((s?.routes?.root || "/") + "cart/update.js", { method: "POST", body: new URLSearchParams({ [`attributes[${K}]`]: cart = id }) })
  .catch(() => {});
};
let ok = c.consent != "required", page = fromUrl(L.href), cart;
ok && page && save(page);
w.postbackRelay = { clickId, fromUrl, cookieDomains, decorate: run, consent: yes => (ok = !!yes) ? (page && save(page), run()) : erase() };
run();
new MutationObserver(run).observe(d.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["href", "action"] });
})(window, document, location, "click_id");
