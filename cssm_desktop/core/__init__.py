"""The engine: key hierarchy, formats and the put/get pipelines. Never imports Qt."""
