"""Authentication and authorization: API keys, roles and permissions, tool access policies, rate
limits and the audit events. The HTTP edge is in ``web/auth.py``, the permission table in
``web/security.py``."""
