"""The dashboard's ASGI app: HTML pages that fetch their data as JSON from `/api/...`, and one
server-sent event stream (`/api/events`) that tells them which studies changed.

Reads go through the client's store; cancel and resume go through the client as the CLI's do
(published to the broker), and need the settings' token as `Authorization: Bearer <token>`.
Endpoints that read the store are plain functions, which Starlette runs in its thread pool.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from tunefleet_contract.documents import finite
from tunefleet_runtime.broker import CONNECTION_ERRORS
from tunefleet_runtime.deadletters import list_dead_letters
from tunefleet_runtime.records import StudyRecord, TrialRecord
from tunefleet_runtime.settings import DashboardSettings
from tunefleet_runtime.store import STORE_ERRORS, Store

from tunefleet.client import Client, StudyNotFoundError
from tunefleet.dashboard import pages, views
from tunefleet.dashboard.live import Follower
from tunefleet.dashboard.state import Kept, StudyResults

__all__ = ["create_app"]

log = logging.getLogger("tunefleet.dashboard")

# The figures (parallel coordinates, importance, rungs) are drawn from at most this many of a
# library's best trials plus as many others, sampled: enough for the picture, bounded in cost.
_FIGURE_TRIALS = 1000
# Studies whose workers the fleet page shows: the most recent ones.
_FLEET_STUDIES = 10
# Studies read at start, in the background, so that their pages open at once.
_WARM_STUDIES = 3
_DEAD_LETTERS = 200


def _json(value: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(finite(value), status_code=status_code)


def _error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """The failures every read can meet, as JSON errors with a status code."""

    def guarded(request: Request) -> Response:
        try:
            return handler(request)
        except StudyNotFoundError as exc:
            return _error(str(exc), 404)
        except ValueError as exc:
            return _error(str(exc), 400)
        except LookupError as exc:
            return _error(str(exc), 404)
        except STORE_ERRORS as exc:
            return _error(f"cannot read MongoDB: {str(exc).split(',')[0]}", 503)
        except CONNECTION_ERRORS as exc:
            return _error(f"cannot reach RabbitMQ: {exc or type(exc).__name__}", 503)

    guarded.__name__ = handler.__name__
    return guarded


def create_app(
    client: Client,
    settings: DashboardSettings,
    *,
    interval_s: float = 0.25,
    warm: int = _WARM_STUDIES,
) -> Starlette:
    """The dashboard for the client's store and broker. `interval_s`: how often the store is
    followed for changes (results reach the pages within about that much of being stored);
    `warm`: how many of the most recent studies are read at start (in the background)."""
    store = client.store
    kept = Kept(store, max_results=settings.tunefleet_dashboard_max_results)
    follower = Follower(store, client.settings, interval_s=interval_s, kept=kept)
    token = settings.tunefleet_dashboard_token

    def authorised(request: Request) -> Response | None:
        if token is None:
            return _error(
                "read-only: this dashboard was started without TUNEFLEET_DASHBOARD_TOKEN, so "
                "cancel and resume are off",
                403,
            )
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            return _error("cancel and resume need the dashboard's token", 401)
        return None

    def results(record: StudyRecord) -> StudyResults:
        return kept.get(record)

    # -- pages -------------------------------------------------------------------------------

    def page(kind: str) -> Callable[[Request], Response]:
        def render(request: Request) -> Response:
            ident = request.path_params.get("ident", "")
            return HTMLResponse(pages.render(kind, ident, writable=token is not None))

        render.__name__ = f"{kind}_page"
        return render

    plotly_js: list[bytes] = []

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "plotly.js":
            if not plotly_js:
                from plotly.offline import get_plotlyjs

                plotly_js.append(get_plotlyjs().encode())
            body, media = plotly_js[0], "text/javascript"
        elif name in ("dashboard.js", "dashboard.css"):
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            media = "text/javascript" if name.endswith(".js") else "text/css"
        else:
            return _error(f"no static file {name!r}", 404)
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    # -- data --------------------------------------------------------------------------------

    def studies(_request: Request) -> Response:
        rows = []
        for record in store.studies(limit=follower.studies):
            rows.append(views.study_row(record, results(record).progress()))
        return _json({"studies": rows, "version": follower.version, "kept": kept.stats()})

    def study(request: Request) -> Response:
        study_id = request.path_params["ident"]
        record = client.study_record(study_id)
        state = results(record)
        now = state.progress()
        return _json(
            {
                "study_id": study_id,
                "name": record.spec.name,
                "submitted_at": views.iso(record.submitted_at),
                "revision": record.revision,
                "cancelled_at": views.iso(record.cancelled_at),
                "cancel_reason": record.cancel_reason,
                "libraries": list(record.spec.search),
                "state": str(now.state),
                "progress": now.as_dict(),
                "best": state.best_so_far(),
                "leaderboard": state.leaderboard(),
                "failures": state.failures(),
                # Per trial core-seconds and pool come with the cost ledger (issue 21).
                "cost": None,
                "writable": token is not None,
            }
        )

    def trials(request: Request) -> Response:
        study_id = request.path_params["ident"]
        record = client.study_record(study_id)
        query = views.TrialQuery.parse(request.query_params)
        return _json(results(record).table(query))

    def figures(request: Request) -> Response:
        # Drawn again after a change for at most a fifth of the server's time (timed without
        # the first call's imports of the report, pandas and Plotly, which take seconds).
        import pandas  # noqa: F401

        import tunefleet.report  # noqa: F401

        record = client.study_record(request.path_params["ident"])
        drawn: Response = results(record).paced("figures", lambda: draw_figures(request))
        return drawn

    def draw_figures(request: Request) -> Response:
        from tunefleet.frames import results as frame_of
        from tunefleet.frames import scored
        from tunefleet.report import library_sections

        study_id = request.path_params["ident"]
        record = client.study_record(study_id)
        spec = record.spec
        records = results(record).memo("sample", _sample)
        plan = client.plan(study_id) if spec.adaptive else []
        done = scored(frame_of(records))
        metric = spec.metric or "score"
        sections: list[dict[str, Any]] = []

        def figure(title: str, fig: Any, note: str = "") -> None:
            if isinstance(fig, str):
                sections.append({"title": title, "text": fig})
            else:
                fig.update_layout(template="plotly_white")
                sections.append({"title": title, "figure": json.loads(fig.to_json()), "note": note})

        class Sections(list[str]):
            """The report's HTML between figures, kept in order with them."""

            def append(self, item: str) -> None:
                sections.append({"html": item})

        if len(done):
            library_sections(spec, done, records, plan, metric, Sections(), figure)
        return _json({"sections": sections, "trials": len(records)})

    def compare(request: Request) -> Response:
        sides = []
        for key in ("a", "b"):
            study_id = request.query_params.get(key) or ""
            if not study_id:
                raise ValueError(f"{key}: give the id of a study to compare")
            record = client.study_record(study_id)
            state = results(record)
            sides.append(views.compared(record, state.progress(), state.ranked()))
        return _json({"studies": sides})

    def dead_letters(request: Request) -> Response:
        study_id = request.path_params["ident"]
        client.study_record(study_id)
        letters = list_dead_letters(client.settings, limit=_DEAD_LETTERS)
        mine = [letter.as_dict() for letter in letters if letter.study_id == study_id]
        return _json({"dead_letters": mine, "read": len(letters)})

    def trial(request: Request) -> Response:
        detail = client.trial(request.path_params["ident"])
        if detail is None:
            return _error(f"no trial {request.path_params['ident']!r}", 404)
        model = client.model(detail.study_id, detail.trial_id)
        result = detail.result
        return _json(
            {
                "trial_id": detail.trial_id,
                "study_id": detail.study_id,
                "status": detail.status,
                "revision": detail.revision,
                "superseded": detail.superseded,
                "result": None if result is None else {**result.as_dict(), **_times(result)},
                "starts": [
                    {
                        "attempt": s.attempt,
                        "worker": s.worker,
                        "started_at": views.iso(s.started_at),
                        "revision": s.revision,
                    }
                    for s in detail.starts
                ],
                "model": None if model is None else _model_info(model),
            }
        )

    def model(request: Request) -> Response:
        detail = client.trial(request.path_params["ident"])
        if detail is None:
            return _error(f"no trial {request.path_params['ident']!r}", 404)
        stored = client.model(detail.study_id, detail.trial_id)
        if stored is None or stored.status != "done" or stored.sha256 is None:
            return _error(f"trial {detail.trial_id} has no stored model (refit it first)", 404)
        filename = f"{stored.library}-{detail.trial_id[:12]}.{stored.format or 'bin'}"
        return Response(
            client.model_bytes(stored),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    def fleet(_request: Request) -> Response:
        recent = store.studies(limit=_FLEET_STUDIES)
        kept_ones = [results(s) for s in recent]  # their starts as kept: no read of them all
        starts = [(k.study_id, start) for k in kept_ones for start in k.starts()]
        finished = [r for k in kept_ones for r in k.ranked()]
        return _json({"workers": views.fleet(starts, finished, time.time())})

    def cancel(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        study_id = request.path_params["ident"]
        client.cancel(study_id, reason="cancelled from the dashboard")
        return _json({"study_id": study_id, "cancelled": True})

    def resume(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        done = client.resume(request.path_params["ident"])
        return _json(
            {
                "study_id": done.study_id,
                "revision": done.revision,
                "republished": done.republished,
                "published": done.published,
            }
        )

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[dict[str, str]]:
            yield {"event": "hello", "data": json.dumps({"version": follower.version})}
            async for changed in follower.changes():
                if await request.is_disconnected():
                    return
                yield {"event": "change", "data": json.dumps(changed)}

        return EventSourceResponse(stream(), ping=15)

    # -- probes (the Kubernetes Deployment's and the compose healthcheck) ---------------------

    def livez(_request: Request) -> Response:
        """The server answers; the store or the broker may be away (the pages say so)."""
        return _json({"live": True})

    def readyz(_request: Request) -> Response:
        """The store answers a read: without it the pages have nothing to show. The events
        stream is reported, not required (without it the follower polls every study)."""
        try:
            store.studies(limit=1)
        except STORE_ERRORS as exc:
            return _error(f"cannot read MongoDB: {str(exc).split(',')[0]}", 503)
        return _json({"ready": True, "events": follower.events_live})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        import asyncio

        stop = threading.Event()
        listener = threading.Thread(
            target=follower.listen, args=(stop,), name="dashboard-events", daemon=True
        )
        listener.start()
        task = asyncio.create_task(follower.run())
        warmer = threading.Thread(
            target=_warm, args=(kept, store, warm), name="dashboard-warm", daemon=True
        )
        warmer.start()
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/", page("studies")),
        Route("/studies/{ident}", page("study")),
        Route("/trials/{ident}", page("trial")),
        Route("/fleet", page("fleet")),
        Route("/compare", page("compare")),
        Route("/static/{name}", static),
        Route("/api/studies", _guarded(studies)),
        Route("/api/studies/{ident}", _guarded(study)),
        Route("/api/studies/{ident}/trials", _guarded(trials)),
        Route("/api/studies/{ident}/figures", _guarded(figures)),
        Route("/api/studies/{ident}/dead-letters", _guarded(dead_letters)),
        Route("/api/studies/{ident}/cancel", _guarded(cancel), methods=["POST"]),
        Route("/api/studies/{ident}/resume", _guarded(resume), methods=["POST"]),
        Route("/api/trials/{ident}", _guarded(trial)),
        Route("/api/trials/{ident}/model", _guarded(model)),
        Route("/api/fleet", _guarded(fleet)),
        Route("/api/compare", _guarded(compare)),
        Route("/api/events", events),
        Route("/livez", livez),
        Route("/readyz", readyz),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.follower = follower
    return app


def _warm(kept: Kept, store: Store, count: int) -> None:
    """Read the most recent studies' results (a page asked for meanwhile waits for its own)."""
    try:
        for record in store.studies(limit=count):
            kept.get(record)
    except STORE_ERRORS as exc:  # the pages read them when asked
        log.warning("cannot read the store to warm the recent studies: %s", exc)


def _sample(records: list[TrialRecord]) -> list[TrialRecord]:
    """Per library its best `_FIGURE_TRIALS` trials and as many others spread over the rest
    (best first, as the report's figures expect)."""
    by_library: dict[str, list[TrialRecord]] = {}
    for record in records:  # the store's order: best first
        by_library.setdefault(record.library, []).append(record)
    chosen: list[TrialRecord] = []
    for part in by_library.values():
        chosen += part[:_FIGURE_TRIALS]
        rest = part[_FIGURE_TRIALS:]
        chosen += [rest[i] for i in views.spread(len(rest), _FIGURE_TRIALS)]
    return sorted(chosen, key=lambda r: (r.status != "done", -(r.score or 0.0)))


def _times(result: TrialRecord) -> dict[str, Any]:
    return {"finished_at_iso": views.iso(result.finished_at)}


def _model_info(model: Any) -> dict[str, Any]:
    return {
        "status": model.status,
        "format": model.format,
        "size": model.size,
        "sha256": model.sha256,
        "library_version": model.library_version,
        "error": getattr(model, "error", None),
    }
