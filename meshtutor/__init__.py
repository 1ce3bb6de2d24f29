"""meshtutor: learn service-mesh security with real manifests, real TLS and real curl."""

from __future__ import annotations

__version__ = "0.1.0"
