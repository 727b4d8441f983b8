"""Where parts live: one small interface, a folder and an S3 implementation."""

from .base import ObjectInfo, ObjectReader, ObjectWriter, Store
from .folder import FolderStore

__all__ = ["FolderStore", "ObjectInfo", "ObjectReader", "ObjectWriter", "Store"]
