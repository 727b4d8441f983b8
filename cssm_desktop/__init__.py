"""CSSM Desktop: encrypted, erasure-coded k-of-n storage across S3 buckets and folders."""

__version__ = "0.1.0"
