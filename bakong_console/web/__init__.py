"""The payer's pages (hosted checkout, and the customer display beside it): server-rendered
Jinja2 pages, one small script, server-sent events. No API key ever reaches a browser: a page is
opened by an unguessable token that reaches one payment and nothing else."""

from bakong_console.web.app import WebContext, create_web_app, make_context, web_mounts

__all__ = ["WebContext", "create_web_app", "make_context", "web_mounts"]
