"""convhub benchmark: signed Volcengine calls on a live server, beside a plain-ASGI ceiling."""
