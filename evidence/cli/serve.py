"""`evidence serve`: the web application (evidence.web) with this installation's catalogue, store and key, and a
thread anchoring the custody chain while it runs."""
from __future__ import annotations

import threading

import click

from catalog import load_or_create_key
from evidence.cli.common import errors, settings
from ingest.anchoring import anchor_periodically
from ingest.services import catalog_engine, check_policy_at_start, open_store

__all__ = ["serve"]


@click.command("serve")
@click.option("--host", help="Default from EVIDENCE_WEB_ADDR.")
@click.option("--port", type=click.IntRange(0, 65535), help="Default from EVIDENCE_WEB_ADDR.")
def serve(host: str | None, port: int | None) -> None:
    """Run the web application (pages and the JSON API; OpenAPI at /api/openapi.json)."""
    import uvicorn

    from evidence.web import WebConfig, create_app
    from ingest.documents import document_attacher

    with errors():
        cfg = settings()
        check_policy_at_start(cfg, "the web application", adopt_as=None)
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine:
            app = create_app(WebConfig.from_settings(cfg, engine=engine, store=store, key=key,
                                                     attach=document_attacher(cfg, store, key)))
            # Web activity (views, stamps, case links, sign-ins) is anchored even where no station or scheduler runs.
            stop = threading.Event()
            threading.Thread(target=anchor_periodically, args=(cfg, engine, store),
                             kwargs={"key": key, "who": "evidence serve", "stop": stop}, name="anchor",
                             daemon=True).start()
            try:
                # X-Forwarded-For/-Proto are believed only from EVIDENCE_WEB_TRUSTED_PROXIES (the reverse proxy):
                # the client address they give is what sign-in backoff counts and the custody log records.
                uvicorn.run(app, host=host or cfg.web_addr[0], port=port if port is not None else cfg.web_addr[1],
                            log_level="info", log_config=None,  # our timestamped handler (evidence.cli.main)
                            proxy_headers=bool(cfg.web_trusted_proxies),
                            forwarded_allow_ips=list(cfg.web_trusted_proxies))
            finally:
                stop.set()
