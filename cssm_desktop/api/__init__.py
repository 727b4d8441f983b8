"""The local HTTP API: the engine for other programs on this computer (a script, a
scanner's "save to", a NAS job). FastAPI for routes and OpenAPI made from them, uvicorn
to serve; loopback only, a bearer token, Host and Origin checked (SECURITY.md)."""
