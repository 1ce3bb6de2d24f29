"""The sandbox's Kubernetes API: what the real ``kubectl`` and the official client talk to."""
