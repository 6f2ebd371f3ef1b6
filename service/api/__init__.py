"""HTTP and WebSocket routes (thin: they parse, call the session registry / worker, answer)."""
