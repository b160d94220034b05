"""The dashboard: server-rendered pages for admins, technicians, data users and the public
(docs/dashboard.md). `router(storage)` is included in the hub's app by `hub._api.create_app`;
templates, styles, scripts and the vendored uPlot ship inside this package."""

from hub.dashboard._router import router
from hub.dashboard._svgmap import check_tiles

__all__ = ["check_tiles", "router"]
