"""sstate-mirror: keep bitbake sstate mirrors healthy on a directory, WebDAV or S3."""

__version__ = "0.1.0"
