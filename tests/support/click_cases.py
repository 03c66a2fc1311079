"""The parsing and cookie-domain rules of click.js as a table, run in two JavaScript engines: headless Chromium
(tests/integration/test_click_browser.py) and Node.js (tests/unit/test_click_rules.py)."""

from __future__ import annotations

CLICK = "c86b8a88b91228911e723b93c65a5900bb49bc99"
NEWER = "0123456789abcdef0123456789abcdef01234567"

# postbackRelay.fromUrl(url, names?) -> the click id, or None
FROM_URL = [
    (f"https://shop.test/?click_id={CLICK}", None, CLICK),
    (f"https://shop.test/?click_id={CLICK.upper()}", None, CLICK),  # case-folded, as the relay does
    (f"https://shop.test/?click_id=+{CLICK}+", None, CLICK),  # trimmed
    ("https://shop.test/?click_id=", None, None),
    ("https://shop.test/?click_id={click_id}", None, None),  # the macro TrafficStars did not fill
    (f"https://shop.test/?click_id={CLICK[:-1]}", None, None),  # 39 characters
    (f"https://shop.test/?click_id={CLICK}0", None, None),  # 41
    (f"https://shop.test/?click_id={CLICK[:-1]}g", None, None),  # not hex
    (f"https://shop.test/?clickid={CLICK}", None, None),  # only the configured names
    (f"https://shop.test/?tp=bad&click_id={CLICK}", ["tp", "click_id"], CLICK),  # the first valid one
    (f"https://shop.test/?tp={NEWER}&click_id={CLICK}", ["tp", "click_id"], NEWER),
    (f"https://shop.test/#click_id={CLICK}", None, None),  # the fragment is not the query
    (f"/landing?click_id={CLICK}", None, CLICK),  # relative to the page
]

# postbackRelay.cookieDomains(host) -> Domain= candidates, widest first; [] is a host-only cookie
COOKIE_DOMAINS = [
    ("example.com", ["example.com"]),
    ("www.example.com", ["example.com", "www.example.com"]),
    ("a.b.example.com", ["example.com", "b.example.com", "a.b.example.com"]),
    ("www.shop.co.uk", ["shop.co.uk", "www.shop.co.uk"]),  # never co.uk: a multi-part public suffix
    ("shop.org.uk", ["shop.org.uk"]),
    ("shop.com.au", ["shop.com.au"]),
    ("www.shop.co.jp", ["shop.co.jp", "www.shop.co.jp"]),
    ("www.company.com.br", ["company.com.br", "www.company.com.br"]),
    ("co.uk", []),  # a public suffix itself
    ("com.au", []),
    ("shop.io", ["shop.io"]),
    ("www.shop.de", ["shop.de", "www.shop.de"]),
    ("www.shop.com", ["shop.com", "www.shop.com"]),  # com is a suffix only under a two-letter TLD
    ("localhost", []),
    ("shop.localhost", []),
    ("127.0.0.1", []),
    ("10.0.0.12", []),
    ("[::1]", []),
    ("[2001:db8::1]", []),
    ("intranet", []),  # one label: nothing above it
]
