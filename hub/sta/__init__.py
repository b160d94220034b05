"""OGC SensorThings API v1.1, read-only, at /sta/v1.1: our sensors, series and readings as
Things, Datastreams and Observations, each reader seeing the datasets it may read."""

from hub.sta._model import SensorMeta, catalogue_of
from hub.sta._query import MAX_TOP, QueryError, parse_filter, parse_options
from hub.sta._router import CONFORMANCE, sta_router

__all__ = [
    "CONFORMANCE",
    "MAX_TOP",
    "QueryError",
    "SensorMeta",
    "catalogue_of",
    "parse_filter",
    "parse_options",
    "sta_router",
]
