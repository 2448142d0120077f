"""HTTP service for rag: POST /ask, GET /health, GET /documents (see api/README.md)."""
