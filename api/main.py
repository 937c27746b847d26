"""Build the API app: `uvicorn api.main:app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.batching import Batcher
from api.docs import install_docs
from api.errors import install_error_handlers
from api.prefect_events import ANSWER_SECONDS, TIMEOUT
from api.routes import events, health, images
from image_pipeline.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One connection pool to Prefect for the process, closed on shutdown.
    with httpx.Client(timeout=TIMEOUT) as http:
        app.state.http = http
        app.state.batcher = batcher = Batcher()
        try:
            yield
        finally:
            # Uploads still waiting for their batch go to Prefect before the client closes.
            await asyncio.to_thread(batcher.close, ANSWER_SECONDS)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Image pipeline API",
        summary="Status of processed images, and the EventBridge webhook that starts runs.",
        lifespan=lifespan,
        # Served by install_docs from local files: FastAPI's own pages load a CDN's.
        docs_url=None,
        redoc_url=None,
    )
    # Middleware is fixed when the app is built: a change of origins needs a restart.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=get_settings().cors_origins,
        allow_methods=["GET"],
        allow_headers=["*"],
    )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(images.router)
    return app


app = create_app()
