"""SMTP: the sans-IO server engine (server.py), the per-connection session (session.py)
and the client used by the smtp transport (client.py)."""
