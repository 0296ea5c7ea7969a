"""The core agent's REST API (`/v0`, after Mayastor's OpenAPI v0 document)."""

from mayastor.control.rest.app import create_app

__all__ = ["create_app"]
