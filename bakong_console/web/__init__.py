"""The payer's pages (hosted checkout, and the customer display beside it): server-rendered
Jinja2 pages, one small script, server-sent events. No API key ever reaches a browser: a page is
opened by an unguessable token that reaches one payment and nothing else.

``web.app`` builds the apps (``web_mounts`` for `serve`, ``create_web_app`` for the console),
``web.checkout`` the checkout routes, ``web.server`` the console's own server.
"""
